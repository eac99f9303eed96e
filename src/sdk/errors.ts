/**
 * Turns what the SDKs throw into one line of cause and one line of hint.
 *
 * The SDKs wrap errors unevenly: the service side surfaces Node's socket and TLS errors as-is (with `code`), or
 * typed errors per HTTP status; the device side reports every failure of its first connection as an
 * `UnauthorizedError` whose message carries the original one ("Failure on first connection (Not authorized):
 * connect ECONNREFUSED ..."). So codes and message texts are both looked at, network causes first.
 */

/** Thrown by {@link withTimeout}. */
export class TimeoutError extends Error {
  constructor(
    readonly what: string,
    readonly seconds: number,
  ) {
    super(`${what} timed out after ${seconds} s`);
    this.name = "TimeoutError";
  }
}

/** Thrown when an operation exhausted its retries (e.g. the twin kept changing under us). */
export class RetriesExhaustedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RetriesExhaustedError";
  }
}

/** The device's connection kept being closed by another client connecting with the same device ID. */
export class TakenOverError extends Error {
  /**
   * @param drops times the connection was closed after it had been established
   * @param stalled set when the drops were followed by an operation that never finished (a start-up that the
   *   other client interrupted): the takeover is then the likely cause rather than a certainty
   */
  constructor(
    readonly drops: number,
    readonly seconds: number,
    readonly stalled?: TimeoutError,
  ) {
    super(
      stalled
        ? `the connection was closed right after connecting, then ${stalled.what.toLowerCase()} did not finish within ${stalled.seconds} s`
        : `the connection was closed ${drops} times within ${seconds} s, each time after it had connected`,
    );
    this.name = "TakenOverError";
  }
}

/** Rejects with a {@link TimeoutError} if `promise` has not settled within `seconds`. */
export async function withTimeout<T>(promise: Promise<T>, seconds: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(what, seconds)), seconds * 1000);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export type FailureKind =
  | "timeout"
  | "taken-over"
  | "tls"
  | "not-tls"
  | "refused"
  | "dns"
  | "network"
  | "device-not-found"
  | "hub-not-found"
  | "unauthorized"
  | "forbidden"
  | "throttled"
  | "etag"
  | "rejected"
  | "service"
  | "unknown";

export interface FailureContext {
  side: "service" | "device";
  /** `HostName` as written in the connection string. */
  hostName: string;
  /** The variable holding the connection string, for hints. */
  variable: string;
  deviceId?: string;
  /** The extra CA configured (IOTHUB_CA_FILE or --ca-file), so a trust failure can say it is the wrong one. */
  ca?: { file: string; setting: string };
}

export interface Failure {
  kind: FailureKind;
  /** One line: what went wrong. */
  message: string;
  /** One line: what to do about it. */
  hint: string;
}

const TLS_CODES = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
  "CERT_REJECTED",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** Node's TLS messages, for errors that lost their code on the way (the device side). */
const TLS_MESSAGES: [RegExp, string][] = [
  [/certificate signature failure/i, "CERT_SIGNATURE_FAILURE"],
  [/unable to decrypt certificate'?s signature/i, "UNABLE_TO_DECRYPT_CERT_SIGNATURE"],
  [/certificate not trusted/i, "CERT_UNTRUSTED"],
  [/certificate rejected/i, "CERT_REJECTED"],
  [/self[- ]signed certificate in certificate chain/i, "SELF_SIGNED_CERT_IN_CHAIN"],
  [/self[- ]signed certificate/i, "DEPTH_ZERO_SELF_SIGNED_CERT"],
  [/unable to verify the first certificate/i, "UNABLE_TO_VERIFY_LEAF_SIGNATURE"],
  [/unable to get local issuer certificate/i, "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"],
  [/unable to get issuer certificate/i, "UNABLE_TO_GET_ISSUER_CERT"],
  [/certificate has expired/i, "CERT_HAS_EXPIRED"],
  [/certificate is not yet valid/i, "CERT_NOT_YET_VALID"],
  [/does not match certificate's altnames/i, "ERR_TLS_CERT_ALTNAME_INVALID"],
];

const NETWORK_CODES = ["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH"];

interface Gathered {
  names: string[];
  codes: string[];
  messages: string[];
  statusCode: number | undefined;
}

function gather(
  error: unknown,
  into: Gathered = { names: [], codes: [], messages: [], statusCode: undefined },
  depth = 0,
) {
  if (depth > 4 || error === null || typeof error !== "object") {
    if (typeof error === "string") into.messages.push(error);
    return into;
  }
  const e = error as Record<string, unknown>;
  if (typeof e.name === "string") into.names.push(e.name);
  if (typeof e.code === "string") into.codes.push(e.code);
  if (typeof e.message === "string") into.messages.push(e.message);
  const response = e.response as { statusCode?: unknown } | undefined;
  if (into.statusCode === undefined && typeof response?.statusCode === "number")
    into.statusCode = response.statusCode;
  for (const inner of [e.transportError, e.innerError, e.cause]) {
    if (inner !== undefined && inner !== error) gather(inner, into, depth + 1);
  }
  return into;
}

/** The hub's own explanation, cut to one short line; the SDK prefixes "Error: " to unparsed bodies. */
function hubSays(messages: string[]): string {
  const text = (messages[0] ?? "")
    .replace(/\s+/g, " ")
    .replace(/^Error: /, "")
    .trim();
  if (text === "" || text === "{}") return "";
  return text.length > 160 ? `${text.slice(0, 157)}...` : text;
}

export function describeFailure(error: unknown, context: FailureContext): Failure {
  const { hostName, variable } = context;
  const { names, codes, messages, statusCode } = gather(error);
  const allText = messages.join(" | ");
  const hasCode = (code: string) => codes.includes(code) || new RegExp(`\\b${code}\\b`).test(allText);

  if (error instanceof TimeoutError) {
    return {
      kind: "timeout",
      message: `${error.what} did not finish within ${error.seconds} s (hub ${hostName}).`,
      hint: `Check that the hub is reachable and running; raise --timeout if it is just slow.`,
    };
  }

  if (error instanceof TakenOverError) {
    return {
      kind: "taken-over",
      message:
        `Another client is ${error.stalled ? "probably " : ""}connected as device '${context.deviceId ?? "?"}' to ` +
        `${hostName}: IoT Hub allows one connection per device, so each connection closes the other (${error.message}).`,
      hint: "Stop the other app using this device (another report-connectivity in another terminal?), or give each app its own device and connection string.",
    };
  }

  const tlsCode =
    codes.find((c) => TLS_CODES.has(c)) ?? TLS_MESSAGES.find(([pattern]) => pattern.test(allText))?.[1];
  if (tlsCode) return describeTlsFailure(tlsCode, context);
  if (hasCode("EPROTO") || /wrong version number|packet length too long|unknown protocol/i.test(allText)) {
    return {
      kind: "not-tls",
      message: `TLS handshake with ${hostName} failed: the server does not speak TLS on that port.`,
      hint: `Check the port in HostName of ${variable} (the local hub listens on 18883 by default).`,
    };
  }
  if (hasCode("ECONNREFUSED")) {
    return {
      kind: "refused",
      message: `Cannot connect to ${hostName}: connection refused (ECONNREFUSED).`,
      hint: `Is the hub running? For the local hub run \`npx local-hub\` in another terminal; otherwise check HostName in ${variable}.`,
    };
  }
  if (hasCode("ENOTFOUND") || hasCode("EAI_AGAIN")) {
    return {
      kind: "dns",
      message: `Cannot resolve the host name of ${hostName} (${hasCode("ENOTFOUND") ? "ENOTFOUND" : "EAI_AGAIN"}).`,
      hint: `Check HostName in ${variable} (for Azure: <hub-name>.azure-devices.net) and your network/DNS.`,
    };
  }
  const networkCode = NETWORK_CODES.find(hasCode) ?? ["ECONNRESET", "EPIPE"].find(hasCode);
  if (networkCode || /socket hang up|premature close/i.test(allText)) {
    return {
      kind: "network",
      message: `The connection to ${hostName} failed (${networkCode ?? "connection closed"}).`,
      hint: `Check that the hub is running and reachable, and the port in HostName of ${variable} (MQTT needs 8883 open on Azure).`,
    };
  }

  const name = names[0] ?? "";
  const said = hubSays(messages);
  if (names[0] === "NotConnectedError" && !/not authorized|bad username or password/i.test(allText)) {
    return {
      kind: "network",
      message: `The connection to ${hostName} was closed (NotConnectedError).`,
      hint: "Check that the hub is still running and reachable.",
    };
  }
  if (names.includes("DeviceNotFoundError")) {
    return {
      kind: "device-not-found",
      message: `Device '${context.deviceId ?? "?"}' is not registered in the hub ${hostName} (DeviceNotFoundError).`,
      hint: "Register it (Azure portal: IoT hub > Devices > Add device), or pick an existing one with --device or IOTHUB_DEVICE_ID.",
    };
  }
  if (names.includes("IotHubNotFoundError")) {
    return {
      kind: "hub-not-found",
      message: `The hub ${hostName} does not exist (IotHubNotFoundError).`,
      hint: `Check HostName in ${variable}.`,
    };
  }
  if (
    names.includes("UnauthorizedError") ||
    statusCode === 401 ||
    /not authorized|bad username or password/i.test(allText)
  ) {
    return context.side === "device"
      ? {
          kind: "unauthorized",
          message: `The hub ${hostName} refused the device '${context.deviceId ?? "?"}' (UnauthorizedError: not authorized).`,
          hint: `Check ${variable}: the device must exist in this hub and the key must be current (copy its primary connection string again); a disabled device is refused too.`,
        }
      : {
          kind: "unauthorized",
          message: `The hub ${hostName} rejected the credentials (UnauthorizedError, HTTP 401)${said ? `: ${said}` : "."}`,
          hint: `Check the policy name and key in ${variable}; the policy needs registry read and service connect permissions (iothubowner has both).`,
        };
  }
  if (statusCode === 403 || names.includes("TooManyDevicesError")) {
    return {
      kind: "forbidden",
      message: `The hub ${hostName} refused the operation (HTTP 403)${said ? `: ${said}` : "."}`,
      hint: "Check the hub's quotas and the policy's permissions (registry read and service connect).",
    };
  }
  if (names.includes("ThrottlingError") || statusCode === 429) {
    return {
      kind: "throttled",
      message: `The hub ${hostName} is throttling requests (HTTP 429).`,
      hint: "Wait a little and run again; on Azure, see the IoT Hub quotas and throttling limits of your tier.",
    };
  }
  if (names.includes("InvalidEtagError") || names.includes("RetriesExhaustedError")) {
    return {
      kind: "etag",
      message: `${said || "The twin kept changing while it was being updated"} (InvalidEtagError).`,
      hint: "Another writer is updating the same twin; run again.",
    };
  }
  if (names.includes("ArgumentError") || statusCode === 400) {
    return {
      kind: "rejected",
      message: `The hub ${hostName} rejected the request (HTTP 400)${said ? `: ${said}` : "."}`,
      hint: "Check the values passed with --plant, --region, --connectivity or --type.",
    };
  }
  if (statusCode !== undefined && statusCode >= 500) {
    return {
      kind: "service",
      message: `The hub ${hostName} failed with HTTP ${statusCode}${said ? `: ${said}` : "."}`,
      hint: "Try again later; run with --verbose for details.",
    };
  }
  return {
    kind: "unknown",
    message: `${name && name !== "Error" ? `${name}: ` : ""}${said || "unexpected failure"}`,
    hint: "Run again with --verbose for details.",
  };
}

/** Codes saying "this chain does not lead to a CA I trust" (as opposed to: expired, wrong name). */
const WRONG_CA_CODES = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_SIGNATURE_FAILURE",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
]);

/**
 * A TLS trust failure. It is checked before anything else: the device SDK reports a refused handshake as
 * "Not authorized", which would otherwise read as a wrong key.
 */
function describeTlsFailure(tlsCode: string, context: FailureContext): Failure {
  const { hostName, variable, ca } = context;
  const isLocal = /^(localhost|127\.0\.0\.1|\[?::1\]?)(:\d+)?$/i.test(hostName);
  if (tlsCode === "CERT_HAS_EXPIRED" || tlsCode === "CERT_NOT_YET_VALID") {
    return {
      kind: "tls",
      message: `TLS: the certificate of ${hostName} ${tlsCode === "CERT_HAS_EXPIRED" ? "has expired" : "is not valid yet"} (${tlsCode}).`,
      hint: isLocal
        ? "Check this machine's clock; a local hub renews its certificate when it starts: restart it."
        : "Check this machine's clock; if it is right, the hub's certificate is out of date (or a proxy's is).",
    };
  }
  if (tlsCode === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return {
      kind: "tls",
      message: `TLS: the certificate of ${hostName} is for another host name (${tlsCode}).`,
      hint: `Check HostName in ${variable}: it must be the name the hub's certificate is for${isLocal ? " (the local hub's covers localhost, 127.0.0.1, ::1 and its --host-name)" : " (<hub-name>.azure-devices.net)"}.`,
    };
  }
  if (ca && WRONG_CA_CODES.has(tlsCode)) {
    return {
      kind: "tls",
      message: `TLS: the certificate of ${hostName} is not signed by the CA in ${ca.setting} (${ca.file}) (${tlsCode}).`,
      hint: isLocal
        ? `The hub on ${hostName} is not the one whose CA is configured (it was started in another folder, or its data folder was recreated): set ${ca.setting} to the file on the 'trust:' line that hub prints, or stop it and run \`npx local-hub\` in this folder.`
        : `Set ${ca.setting} to the PEM file of the CA that issued ${hostName}'s certificate (for Azure IoT Hub, leave it unset).`,
    };
  }
  return {
    kind: "tls",
    message: `TLS: the certificate of ${hostName} is not trusted (${tlsCode}).`,
    hint: isLocal
      ? "Set IOTHUB_CA_FILE to the local hub's CA: the file on the 'trust:' line `npx local-hub` prints (.local-hub/ca.pem in the folder where it runs), or pass --ca-file."
      : "Set IOTHUB_CA_FILE to the PEM file of the CA that issued the hub's certificate (needed behind TLS-inspecting proxies too).",
  };
}
