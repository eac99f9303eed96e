import type { X509Certificate } from "node:crypto";

/**
 * What a device presents when it logs in, whatever the protocol: its device ID, the password (a SAS token; absent
 * or empty for X.509 logins, which is what the device SDKs send then) and the certificate chain it presented in
 * the TLS handshake (leaf first), if any.
 */
export interface DeviceCredentials {
  deviceId: string;
  password?: string;
  peerCertificate?: readonly X509Certificate[];
}

/** How a device proved who it is. */
export type LoginMethod = "sas" | "selfSigned" | "certificateAuthority";

/**
 * Why a login is refused, in protocol-neutral terms; each front end maps it to its own answer
 * (MQTT: `badCredentials` CONNACK 4, `notAuthorized` CONNACK 5, `unavailable` CONNACK 3; HTTP: 401 for both refusals).
 */
export type RefusalKind = "badCredentials" | "notAuthorized" | "unavailable";

export type DeviceVerdict =
  /**
   * `expiresAt`: when the credential ends (ms since the epoch): the SAS token's `se`, or the earliest notAfter of the
   * certificates the login relied on. The hub closes the connection then.
   */
  { ok: true; method: LoginMethod; expiresAt: number } | { ok: false; reason: string; refusal: RefusalKind };

export const refused = (reason: string, refusal: RefusalKind): DeviceVerdict => ({
  ok: false,
  reason,
  refusal,
});
