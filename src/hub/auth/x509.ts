import { createHash, X509Certificate } from "node:crypto";
import { type DeviceVerdict, refused } from "./verdict.js";

/**
 * X.509 device authentication ("Authenticate identities with X.509 certificates"): a device proves who it is with
 * the client certificate it presents in the TLS handshake, either
 * - "X.509 self-signed" (thumbprint): the SHA-1 or SHA-256 thumbprint of the presented certificate equals the
 *   device's registered primary or secondary thumbprint, or
 * - "X.509 CA signed": the presented chain leads to a CA certificate registered with the hub, and the device
 *   certificate's subject common name is the device ID ("the subject name must be set to the device ID", the
 *   X.509 tutorials: "Common Name (CN) ... {your-device-id}").
 * For both, the certificates must be within their validity dates: "For thumbprint auth, IoT Hub validates only if
 * the cert is not expired and if the thumbprints match; other checks like if the cert is a CA cert are done only
 * for CA cert auth" (Azure/iotedge#621, which mirrors IoT Hub's rules in Edge Hub).
 *
 * IoT Hub answers a certificate that does not authenticate the device with CONNACK 5, "Connection refused: not
 * authorized" (Azure/azure-iot-sdk-c#510, Azure/azure-iot-sdk-python#186), so every refusal here is `notAuthorized`.
 * Revocation is by disabling or deleting the device: "IoT Hub doesn't check certificate revocation lists" (same
 * article, "Revoke a device certificate"), which the authorizer checks for every method.
 */

/** A chain deeper than this (device, intermediates, CA) is refused; real ones have 2 to 4 certificates. */
export const MAX_CHAIN_DEPTH = 8;

export interface Thumbprints {
  primaryThumbprint?: string | null;
  secondaryThumbprint?: string | null;
}

/** The certificate's SHA-1 and SHA-256 thumbprints: the hex digest of its DER bytes, upper case. */
export function thumbprintsOf(cert: X509Certificate): { sha1: string; sha256: string } {
  return {
    sha1: createHash("sha1").update(cert.raw).digest("hex").toUpperCase(),
    sha256: createHash("sha256").update(cert.raw).digest("hex").toUpperCase(),
  };
}

const noCertificate = () =>
  refused(
    "no client certificate was presented in the TLS handshake (an X.509 device connects with its certificate and key, and no password)",
    "notAuthorized",
  );

/** Thumbprint authentication of a selfSigned device. */
export function authenticateThumbprint(
  chain: readonly X509Certificate[] | undefined,
  device: Thumbprints,
  now: number,
): DeviceVerdict {
  const leaf = chain?.[0];
  if (!leaf) return noCertificate();
  const dates = outsideValidity(leaf, now, "the device certificate");
  if (dates) return dates;
  const { sha1, sha256 } = thumbprintsOf(leaf);
  // Registered thumbprints are hex in either case (the identity API accepts both): compared case-insensitively.
  const registered = [device.primaryThumbprint, device.secondaryThumbprint]
    .filter((t): t is string => typeof t === "string" && t !== "")
    .map((t) => t.toUpperCase());
  if (!registered.includes(sha1) && !registered.includes(sha256)) {
    return refused(
      "the certificate's thumbprint matches neither the primary nor the secondary thumbprint registered for the device",
      "notAuthorized",
    );
  }
  return { ok: true, method: "selfSigned", expiresAt: validTo(leaf) };
}

/** CA authentication of a certificateAuthority device against the CA certificates registered with the hub. */
export function authenticateCaSigned(
  deviceId: string,
  chain: readonly X509Certificate[] | undefined,
  authorities: readonly X509Certificate[],
  now: number,
): DeviceVerdict {
  const leaf = chain?.[0];
  if (!leaf) return noCertificate();
  const dates = outsideValidity(leaf, now, "the device certificate");
  if (dates) return dates;
  const cn = commonNameOf(leaf);
  if (cn !== deviceId) {
    return refused(
      `the device certificate's subject common name ${cn === undefined ? "is missing" : `(CN=${JSON.stringify(cn.slice(0, 140))}) is not the device ID`}: a CA-signed device certificate must have CN=<device ID>`,
      "notAuthorized",
    );
  }
  if (authorities.length === 0) {
    return refused(
      "no CA certificate is registered with this hub (start local-hub with --ca-cert <file>)",
      "notAuthorized",
    );
  }
  const presented = chain.slice(1, MAX_CHAIN_DEPTH);
  const used: X509Certificate[] = [leaf];
  let current = leaf;
  for (let depth = 0; depth < MAX_CHAIN_DEPTH; depth++) {
    // The device certificate itself never counts as its own authority, even when it is a registered CA.
    const anchor = authorities.find((ca) => ca.raw.compare(leaf.raw) !== 0 && issued(current, ca));
    if (anchor) {
      const expired = outsideValidity(anchor, now, "the registered CA certificate");
      if (expired) return expired;
      used.push(anchor);
      return { ok: true, method: "certificateAuthority", expiresAt: Math.min(...used.map(validTo)) };
    }
    const next = presented.find((c) => c.ca && !used.includes(c) && issued(current, c));
    if (!next) break;
    const expired = outsideValidity(next, now, "an intermediate certificate");
    if (expired) return expired;
    used.push(next);
    current = next;
  }
  return refused(
    "the certificate chain does not lead to a CA certificate registered with the hub",
    "notAuthorized",
  );
}

/** `child` names `parent` as its issuer and carries a valid signature by parent's key. */
function issued(child: X509Certificate, parent: X509Certificate): boolean {
  try {
    return child.checkIssued(parent) && child.verify(parent.publicKey);
  } catch {
    return false;
  }
}

function validTo(cert: X509Certificate): number {
  return Date.parse(cert.validTo);
}

function outsideValidity(cert: X509Certificate, now: number, what: string): DeviceVerdict | undefined {
  const from = Date.parse(cert.validFrom);
  const to = validTo(cert);
  if (!Number.isFinite(from) || !Number.isFinite(to))
    return refused(`${what} has unreadable validity dates`, "notAuthorized");
  if (now < from) return refused(`${what} is not valid yet (notBefore ${cert.validFrom})`, "notAuthorized");
  if (now > to) return refused(`${what} has expired (notAfter ${cert.validTo})`, "notAuthorized");
  return undefined;
}

/**
 * The subject's common name, or undefined when it has none or more than one. Node prints the subject one
 * attribute a line, with RFC 2253 escapes (`\,` `\+` `\"` ..., and `\XX` for control characters); a value
 * quoted as a JSON string (what other Node versions print for special characters) is read too.
 */
export function commonNameOf(cert: X509Certificate): string | undefined {
  const names = cert.subject
    .split("\n")
    .filter((line) => line.startsWith("CN="))
    .map((line) => line.slice(3));
  if (names.length !== 1) return undefined;
  const value = names[0]!;
  if (value.startsWith('"')) {
    try {
      const parsed: unknown = JSON.parse(value);
      return typeof parsed === "string" ? parsed : undefined;
    } catch {
      return undefined;
    }
  }
  return value.replace(/\\(?:([0-9A-Fa-f]{2})|(.))/g, (_, hex?: string, char?: string) =>
    hex ? String.fromCharCode(Number.parseInt(hex, 16)) : (char ?? ""),
  );
}

/**
 * Parses the CA certificates to register with the hub (PEM text, several certificates per text allowed).
 * Throws with a message naming the problem: not PEM, or not a CA certificate (basicConstraints CA:TRUE), as IoT Hub
 * accepts only CA certificates in its certificates list ("Register X.509 CA certificates to your IoT hub").
 */
export function parseCaCertificates(texts: readonly string[], source = "CA certificate"): X509Certificate[] {
  const out: X509Certificate[] = [];
  texts.forEach((text, i) => {
    const where = texts.length > 1 ? `${source} #${i + 1}` : source;
    const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
    if (!blocks) throw new Error(`${where} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    for (const block of blocks) {
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(block);
      } catch (error) {
        throw new Error(`${where} is not a readable certificate: ${(error as Error).message}`);
      }
      if (!cert.ca) {
        throw new Error(
          `${where} (${cert.subject.replace(/\n/g, ", ")}) is not a CA certificate (basicConstraints CA:TRUE): register the CA that signed your device certificates, not a device certificate`,
        );
      }
      out.push(cert);
    }
  });
  return out;
}
