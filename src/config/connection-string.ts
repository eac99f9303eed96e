import { DEVICE_ID_CHARACTERS, isValidDeviceId, MAX_DEVICE_ID_LENGTH } from "../shared/rules.js";
import { ConfigError } from "./errors.js";

/**
 * Parsing and validation of IoT Hub connection strings.
 *
 * Service (hub-level): `HostName=<host>;SharedAccessKeyName=<policy>;SharedAccessKey=<base64 key>`
 * Device:              `HostName=<host>;DeviceId=<id>;SharedAccessKey=<base64 key>`
 *                      (or `SharedAccessSignature=SharedAccessSignature sr=...` instead of the key,
 *                      and optionally `GatewayHostName=<host>`)
 *
 * What is safe to repair is repaired (surrounding whitespace and quotes from copy-paste, a trailing `;`,
 * blanks around `;` and `=`); everything else is rejected with a {@link ConfigError} that names the
 * variable, says what is wrong and how to fix it. Keys and signatures never appear in any message.
 */

/** A host as written in `HostName`, split into its parts. `hostName` is kept exactly as the SDKs need it. */
export interface HostAddress {
  /** As written in the connection string, e.g. `myhub.azure-devices.net` or `localhost:18883`. */
  hostName: string;
  /** The host without the port. */
  host: string;
  /** The port when `HostName` carries one. */
  port: number | undefined;
}

export interface ServiceConnectionString extends HostAddress {
  kind: "service";
  sharedAccessKeyName: string;
  sharedAccessKey: string;
  /** The cleaned-up connection string to hand to the SDK. */
  value: string;
}

export interface DeviceConnectionString extends HostAddress {
  kind: "device";
  deviceId: string;
  sharedAccessKey: string | undefined;
  sharedAccessSignature: string | undefined;
  gatewayHostName: string | undefined;
  /** The cleaned-up connection string to hand to the SDK. */
  value: string;
}

/** Where a value came from, for messages: the variable name and, optionally, its origin. */
export interface ValueLabel {
  /** The variable (or flag) name, e.g. `IOTHUB_CONNECTION_STRING`. */
  name: string;
  /** Human description of where the value was found, e.g. `the environment` or `/app/.env`. */
  origin?: string;
}

const SERVICE_PARTS = ["HostName", "SharedAccessKeyName", "SharedAccessKey"] as const;
const DEVICE_PARTS = [
  "HostName",
  "DeviceId",
  "SharedAccessKey",
  "SharedAccessSignature",
  "GatewayHostName",
] as const;
/** Part names that appear in other kinds of Azure connection strings; recognised so we can explain. */
const OTHER_KNOWN_PARTS = [
  "HostName",
  "SharedAccessKeyName",
  "SharedAccessKey",
  "SharedAccessSignature",
  "DeviceId",
  "ModuleId",
  "GatewayHostName",
  "x509",
  "Endpoint",
  "EntityPath",
] as const;

const QUOTE_PAIRS: Record<string, string> = {
  '"': '"',
  "'": "'",
  "`": "`",
  "\u201c": "\u201d",
  "\u2018": "\u2019",
};
const QUOTE_CHARS = /["'`\u201c\u201d\u2018\u2019]/;
/** Characters that are invisible or blank and sneak in from copy-paste. */
const BLANK = String.raw`(?:\s|\u200b|\u200c|\u200d|\u2060|\ufeff)`;
const BLANK_CHARS = new RegExp(BLANK);
const BLANK_EDGES = new RegExp(`^${BLANK}+|${BLANK}+$`, "g");

const HOST_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

export function describeLabel(label: ValueLabel): string {
  return label.origin ? `${label.name} (from ${label.origin})` : label.name;
}

function fail(label: ValueLabel, problem: string, hint: string): never {
  throw new ConfigError(`${describeLabel(label)} ${problem}`, { setting: label.name, hint });
}

function trimBlanks(value: string): string {
  return value.replace(BLANK_EDGES, "");
}

/** Removes whitespace and one pair of matching quotes around the whole value; rejects unmatched quotes. */
export function stripCopyPasteNoise(raw: string, label: ValueLabel, fixHint: string): string {
  let value = trimBlanks(raw);
  const first = value.charAt(0);
  const closing = QUOTE_PAIRS[first];
  if (closing !== undefined) {
    if (value.length >= 2 && value.endsWith(closing)) {
      value = trimBlanks(value.slice(1, -1));
    } else {
      fail(label, "starts with a quote that is never closed.", fixHint);
    }
  } else if (value.length > 0 && QUOTE_CHARS.test(value.charAt(value.length - 1))) {
    fail(label, "ends with a stray quote.", fixHint);
  }
  return value;
}

interface Part {
  name: string;
  value: string;
  position: number;
}

function splitParts(
  raw: string,
  label: ValueLabel,
  expected: readonly string[],
  fixHint: string,
): Map<string, Part> {
  const value = stripCopyPasteNoise(raw, label, fixHint);
  if (value === "") fail(label, "is empty.", fixHint);

  const segments = value
    .split(";")
    .map(trimBlanks)
    .filter((segment) => segment !== "");
  const parts = new Map<string, Part>();
  segments.forEach((segment, index) => {
    const position = index + 1;
    const eq = segment.indexOf("=");
    if (eq < 0) {
      fail(
        label,
        `is malformed: part ${position} of ${segments.length} has no '=' (expected Name=value parts separated by ';').`,
        fixHint,
      );
    }
    const name = trimBlanks(segment.slice(0, eq));
    const partValue = trimBlanks(segment.slice(eq + 1));
    if (name === "") {
      fail(label, `is malformed: part ${position} of ${segments.length} has no name before '='.`, fixHint);
    }
    if (index === 0 && name === label.name) {
      fail(
        label,
        `contains its own name: the value starts with '${label.name}='.`,
        `Set the variable to the connection string only, without repeating '${label.name}=' inside the value.`,
      );
    }
    const known = OTHER_KNOWN_PARTS.find((k) => k === name);
    if (!known) {
      const caseMatch = [...expected, ...OTHER_KNOWN_PARTS].find(
        (k) => k.toLowerCase() === name.toLowerCase(),
      );
      if (caseMatch) {
        fail(
          label,
          `spells the part '${caseMatch}' with the wrong letter case (names are case-sensitive).`,
          `Write it exactly as '${caseMatch}='.`,
        );
      }
      // The unknown name may be a fragment of a key split by a stray ';', so it is not echoed.
      fail(
        label,
        `is malformed: part ${position} of ${segments.length} has an unrecognised name (expected ${expected.join(", ")}).`,
        fixHint,
      );
    }
    if (parts.has(name)) {
      fail(label, `has the part ${name} twice.`, `Keep exactly one ${name}=...; ${fixHint}`);
    }
    parts.set(name, { name, value: partValue, position });
  });
  return parts;
}

function checkPlainValue(label: ValueLabel, part: Part, fixHint: string): void {
  if (part.value === "") fail(label, `has an empty ${part.name}.`, fixHint);
  // Device IDs may contain an apostrophe; no other part may contain any quote.
  const quotes = part.name === "DeviceId" ? part.value.replaceAll("'", "") : part.value;
  if (QUOTE_CHARS.test(quotes)) {
    fail(
      label,
      `has a quote character inside ${part.name}.`,
      `Remove the quotes inside the value. ${fixHint}`,
    );
  }
  if (BLANK_CHARS.test(part.value)) {
    fail(
      label,
      `has whitespace or an invisible character inside ${part.name} (often a line break from copy-paste).`,
      `Copy the connection string again as one line. ${fixHint}`,
    );
  }
}

/** Validates a base64 key (standard alphabet, padded). Never echoes it. */
export function checkBase64Key(label: ValueLabel, partName: string, key: string, fixHint: string): void {
  if (/[-_]/.test(key) && /^[A-Za-z0-9\-_]+={0,2}$/.test(key)) {
    fail(
      label,
      `has a ${partName} in URL-safe base64 ('-' or '_'); IoT Hub keys use standard base64.`,
      fixHint,
    );
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(key)) {
    fail(
      label,
      `has a ${partName} that is not base64 (it contains characters outside A-Z a-z 0-9 + / =).`,
      fixHint,
    );
  }
  if (key.length % 4 !== 0) {
    fail(
      label,
      `has a ${partName} that is not valid base64 (its length is not a multiple of 4: truncated or extra characters?).`,
      fixHint,
    );
  }
  if (Buffer.from(key, "base64").length === 0) {
    fail(label, `has a ${partName} that decodes to nothing.`, fixHint);
  }
}

/** Parses `host` or `host:port` as found in `HostName`. */
export function parseHostName(label: ValueLabel, partName: string, hostName: string): HostAddress {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(hostName)) {
    fail(
      label,
      `has a ${partName} with a URL scheme ('${hostName.slice(0, hostName.indexOf("://") + 3)}').`,
      `${partName} is a bare host name such as myhub.azure-devices.net; remove the scheme.`,
    );
  }
  if (hostName.includes("/")) {
    fail(
      label,
      `has a ${partName} with a '/' in it ('${hostName}').`,
      `${partName} is a bare host name such as myhub.azure-devices.net, without a path or trailing '/'.`,
    );
  }
  let host = hostName;
  let port: number | undefined;
  const colon = hostName.lastIndexOf(":");
  if (colon >= 0) {
    host = hostName.slice(0, colon);
    const portText = hostName.slice(colon + 1);
    const parsed = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
    if (!(parsed >= 1 && parsed <= 65535)) {
      fail(
        label,
        `has a ${partName} with an invalid port ('${hostName}').`,
        `Write it as host or host:port with a port from 1 to 65535 (for the local hub: localhost:18883).`,
      );
    }
    port = parsed;
  }
  const labels = host.split(".");
  if (host.length > 253 || !labels.every((l) => HOST_LABEL.test(l))) {
    fail(
      label,
      `has a ${partName} that is not a valid host name ('${hostName}').`,
      `Use the hub's host name, such as myhub.azure-devices.net (or localhost:18883 for the local hub).`,
    );
  }
  return { hostName, host, port };
}

export { isValidDeviceId };

export function checkDeviceId(label: ValueLabel, deviceId: string, where = "is"): void {
  if (!isValidDeviceId(deviceId)) {
    const why =
      deviceId.length === 0
        ? "empty"
        : deviceId.length > MAX_DEVICE_ID_LENGTH
          ? `longer than ${MAX_DEVICE_ID_LENGTH} characters`
          : "contains characters IoT Hub does not allow in device IDs";
    throw new ConfigError(`${describeLabel(label)} ${where} not a valid device ID: it is ${why}.`, {
      setting: label.name,
      hint: `Device IDs are up to ${MAX_DEVICE_ID_LENGTH} ASCII letters, digits and ${DEVICE_ID_CHARACTERS}.`,
    });
  }
}

const SERVICE_FIX =
  "Use the hub's connection string for a shared access policy: HostName=<hub>.azure-devices.net;SharedAccessKeyName=<policy>;SharedAccessKey=<key> (Azure portal: your IoT hub > Security settings > Shared access policies).";
const DEVICE_FIX =
  "Use the device's connection string: HostName=<hub>.azure-devices.net;DeviceId=<device>;SharedAccessKey=<key> (Azure portal: your IoT hub > Devices > <device> > Primary connection string).";

function rebuild(parts: Map<string, Part>): string {
  return [...parts.values()]
    .sort((a, b) => a.position - b.position)
    .map((p) => `${p.name}=${p.value}`)
    .join(";");
}

function rejectForeignParts(parts: Map<string, Part>, label: ValueLabel, kind: "service" | "device"): void {
  if (parts.has("Endpoint") || parts.has("EntityPath")) {
    fail(
      label,
      "is an Event Hub-compatible endpoint connection string (it has Endpoint=sb://...), not an IoT Hub connection string.",
      kind === "service" ? SERVICE_FIX : DEVICE_FIX,
    );
  }
  if (parts.has("x509")) {
    fail(
      label,
      "uses X.509 certificate authentication (x509=true), which these tools do not support.",
      kind === "service" ? SERVICE_FIX : `${DEVICE_FIX} The device needs symmetric key authentication.`,
    );
  }
  if (parts.has("ModuleId")) {
    fail(
      label,
      "is a module connection string (it has ModuleId); these tools need a device-level one.",
      kind === "service" ? SERVICE_FIX : DEVICE_FIX,
    );
  }
}

/** Parses the service (hub-level) connection string, e.g. `IOTHUB_CONNECTION_STRING`. */
export function parseServiceConnectionString(
  raw: string | undefined,
  label: ValueLabel,
): ServiceConnectionString {
  if (raw === undefined) {
    throw new ConfigError(`${label.name} is not set.`, {
      setting: label.name,
      hint: `Set it in the environment or in .env (see .env.example). ${SERVICE_FIX}`,
    });
  }
  const parts = splitParts(raw, label, SERVICE_PARTS, SERVICE_FIX);
  rejectForeignParts(parts, label, "service");
  if (parts.has("DeviceId")) {
    fail(
      label,
      "is a device connection string (it has DeviceId), but a service connection string is needed here.",
      `Put the device's string in IOTHUB_DEVICE_CONNECTION_STRING instead. ${SERVICE_FIX}`,
    );
  }
  if (parts.has("SharedAccessSignature")) {
    fail(
      label,
      "carries a SharedAccessSignature; these tools need a policy key (SharedAccessKeyName and SharedAccessKey).",
      SERVICE_FIX,
    );
  }
  if (parts.has("GatewayHostName")) {
    fail(label, "has GatewayHostName, which only device connection strings may have.", SERVICE_FIX);
  }
  for (const name of SERVICE_PARTS) {
    const part = parts.get(name);
    if (!part) fail(label, `is missing ${name}.`, SERVICE_FIX);
    checkPlainValue(label, part, SERVICE_FIX);
  }
  const hostName = parts.get("HostName")!.value;
  const address = parseHostName(label, "HostName", hostName);
  const sharedAccessKeyName = parts.get("SharedAccessKeyName")!.value;
  if (!/^[A-Za-z0-9\-._]{1,64}$/.test(sharedAccessKeyName)) {
    fail(label, "has a SharedAccessKeyName that is not a valid policy name.", SERVICE_FIX);
  }
  const sharedAccessKey = parts.get("SharedAccessKey")!.value;
  checkBase64Key(label, "SharedAccessKey", sharedAccessKey, SERVICE_FIX);
  return { kind: "service", ...address, sharedAccessKeyName, sharedAccessKey, value: rebuild(parts) };
}

/** Parses the device connection string, e.g. `IOTHUB_DEVICE_CONNECTION_STRING`. */
export function parseDeviceConnectionString(
  raw: string | undefined,
  label: ValueLabel,
): DeviceConnectionString {
  if (raw === undefined) {
    throw new ConfigError(`${label.name} is not set.`, {
      setting: label.name,
      hint: `Set it in the environment or in .env (see .env.example). ${DEVICE_FIX}`,
    });
  }
  const parts = splitParts(raw, label, DEVICE_PARTS, DEVICE_FIX);
  rejectForeignParts(parts, label, "device");
  if (parts.has("SharedAccessKeyName")) {
    const isService = !parts.has("DeviceId");
    fail(
      label,
      isService
        ? "is a service connection string (it has SharedAccessKeyName), but a device connection string is needed here."
        : "has SharedAccessKeyName, which device connection strings do not have.",
      isService ? `Put the hub's string in IOTHUB_CONNECTION_STRING instead. ${DEVICE_FIX}` : DEVICE_FIX,
    );
  }
  for (const name of ["HostName", "DeviceId"] as const) {
    const part = parts.get(name);
    if (!part) fail(label, `is missing ${name}.`, DEVICE_FIX);
    checkPlainValue(label, part, DEVICE_FIX);
  }
  const key = parts.get("SharedAccessKey");
  const sas = parts.get("SharedAccessSignature");
  if (key && sas) {
    fail(label, "has both SharedAccessKey and SharedAccessSignature; keep one.", DEVICE_FIX);
  }
  if (!key && !sas) {
    fail(label, "is missing SharedAccessKey.", DEVICE_FIX);
  }
  if (key) {
    checkPlainValue(label, key, DEVICE_FIX);
    checkBase64Key(label, "SharedAccessKey", key.value, DEVICE_FIX);
  }
  if (sas) {
    if (sas.value === "") fail(label, "has an empty SharedAccessSignature.", DEVICE_FIX);
    const token = sas.value;
    if (
      !/^SharedAccessSignature [^\s"']+$/.test(token) ||
      !/[ &]sr=/.test(token) ||
      !/[ &]sig=/.test(token) ||
      !/[ &]se=/.test(token)
    ) {
      fail(
        label,
        "has a malformed SharedAccessSignature (expected 'SharedAccessSignature sr=...&sig=...&se=...').",
        DEVICE_FIX,
      );
    }
  }
  const gateway = parts.get("GatewayHostName");
  if (gateway) {
    checkPlainValue(label, gateway, DEVICE_FIX);
    parseHostName(label, "GatewayHostName", gateway.value);
  }
  const address = parseHostName(label, "HostName", parts.get("HostName")!.value);
  const deviceId = parts.get("DeviceId")!.value;
  checkDeviceId(label, deviceId, "has a DeviceId that is");
  return {
    kind: "device",
    ...address,
    deviceId,
    sharedAccessKey: key?.value,
    sharedAccessSignature: sas?.value,
    gatewayHostName: gateway?.value,
    value: rebuild(parts),
  };
}
