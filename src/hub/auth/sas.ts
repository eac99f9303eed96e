import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * Shared access signatures ("Control access to IoT Hub with SAS"):
 * `SharedAccessSignature sr=<resource>&sig=<sig>&se=<expiry>[&skn=<policy>]`,
 * sig = base64(HMAC-SHA256(base64-decoded key, <sr as written in the token> + "\n" + <se>)).
 */

export interface ParsedToken {
  /** `sr` exactly as it appears in the token (it is what was signed). */
  rawResource: string;
  /** `sr` URL-decoded and lower-cased, for comparing with the guarded resource. */
  resource: string;
  signature: string;
  expiry: number;
  keyName?: string;
}

const PREFIX = "SharedAccessSignature ";

/** Returns undefined when the text is not a well-formed SAS token. */
export function parseToken(text: string | undefined): ParsedToken | undefined {
  if (!text?.startsWith(PREFIX)) return undefined;
  const fields = new Map<string, string>();
  for (const part of text.slice(PREFIX.length).split("&")) {
    const eq = part.indexOf("=");
    if (eq <= 0) return undefined;
    const name = part.slice(0, eq);
    if (fields.has(name)) return undefined;
    fields.set(name, part.slice(eq + 1));
  }
  const rawResource = fields.get("sr");
  const sig = fields.get("sig");
  const se = fields.get("se");
  if (!rawResource || !sig || !se || !/^\d{1,12}$/.test(se)) return undefined;
  // Every field is percent-decoded inside the guard: a malformed escape (`skn=%E0`) is a refusal, never
  // an exception that escapes to the caller (it used to end the hub through the MQTT CONNECT path).
  let resource: string;
  let signature: string;
  let keyName: string | undefined;
  try {
    resource = decodeURIComponent(rawResource).toLowerCase();
    signature = decodeURIComponent(sig);
    const skn = fields.get("skn");
    keyName = skn === undefined ? undefined : decodeURIComponent(skn);
  } catch {
    return undefined;
  }
  if (!isCanonicalBase64(signature)) return undefined;
  return { rawResource, resource, signature, expiry: Number(se), keyName };
}

/**
 * The signature is the base64 of an HMAC-SHA256 ("Control access to IoT Hub with SAS"). Node's base64
 * decoder skips what it does not understand (junk after `=`, spaces, `-`), so without this check many
 * different texts would be accepted as one signature; only the one canonical spelling is.
 */
function isCanonicalBase64(text: string): boolean {
  return (
    text.length > 0 &&
    /^[A-Za-z0-9+/]+={0,2}$/.test(text) &&
    Buffer.from(text, "base64").toString("base64") === text
  );
}

export function sign(key: string, rawResource: string, expiry: number): string {
  return createHmac("sha256", Buffer.from(key, "base64"))
    .update(`${rawResource}\n${expiry}`)
    .digest("base64");
}

/** Constant-time check of the token's signature against each candidate key. */
export function signedByOneOf(token: ParsedToken, keys: readonly string[]): boolean {
  const given = Buffer.from(token.signature, "base64");
  let ok = false;
  for (const key of keys) {
    const expected = Buffer.from(sign(key, token.rawResource, token.expiry), "base64");
    // Every key is checked (no early exit) so timing does not tell which one matched.
    if (given.length === expected.length && timingSafeEqual(given, expected)) ok = true;
  }
  return ok;
}

/** Builds a token (for the hub's own tests and tools; the SDKs make their own). */
export function makeToken(key: string, resource: string, expiry: number, keyName?: string): string {
  const sr = encodeURIComponent(resource);
  const sig = encodeURIComponent(sign(key, sr, expiry));
  return `${PREFIX}sr=${sr}&sig=${sig}&se=${expiry}${keyName ? `&skn=${encodeURIComponent(keyName)}` : ""}`;
}
