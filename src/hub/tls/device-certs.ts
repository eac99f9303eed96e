import { createPrivateKey, X509Certificate } from "node:crypto";
import { thumbprintsOf } from "../auth/x509.js";

/**
 * Device certificates for trying X.509 authentication against the local hub (`local-hub cert`, and the tests):
 * a self-signed device certificate whose thumbprint is registered on the device (selfSigned), or a CA and device
 * certificates it signs (certificateAuthority; the CA is registered with `--ca-cert`). ECDSA P-256, SHA-256, as
 * IoT Hub accepts ("Supported X.509 certificates": RSA and ECC keys). Development material: the keys are written
 * unencrypted.
 *
 * selfsigned is loaded lazily, as in certs.ts: it is not needed for serving.
 */

export interface KeyPair {
  cert: string;
  key: string;
}

export interface Validity {
  /** Default: a day ago (clocks differ). */
  notBefore?: Date;
  /** Default: `days` (365) after now. */
  notAfter?: Date;
  days?: number;
}

const DAY = 86_400_000;

async function generate(...args: Parameters<typeof import("selfsigned").generate>) {
  const selfsigned = await import("selfsigned");
  return selfsigned.generate(...args);
}

function dates(validity: Validity = {}) {
  const now = Date.now();
  return {
    notBeforeDate: validity.notBefore ?? new Date(now - DAY),
    notAfterDate: validity.notAfter ?? new Date(now + (validity.days ?? 365) * DAY),
  };
}

/**
 * The subject as selfsigned wants it: it builds an RFC 4514 name string, so a device ID with `,+="\<>;` (all
 * allowed in device IDs but `"\<>;`) is escaped, as is a leading `#` or space.
 */
function subject(commonName: string) {
  const value = commonName.replace(/[,+"\\<>;=]/g, "\\$&").replace(/^[#\s]/, "\\$&");
  return [{ name: "commonName", value }];
}

const DEVICE_EXTENSIONS = [
  { name: "basicConstraints" as const, cA: false },
  { name: "keyUsage" as const, digitalSignature: true, keyEncipherment: true, critical: true },
  { name: "extKeyUsage" as const, clientAuth: true },
];

/** A device certificate with CN=<deviceId>, self-signed: register its thumbprint on a selfSigned device. */
export async function selfSignedDeviceCertificate(
  deviceId: string,
  validity?: Validity,
): Promise<KeyPair & { sha1: string; sha256: string }> {
  const made = await generate(subject(deviceId), {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    ...dates(validity),
    extensions: DEVICE_EXTENSIONS,
  });
  return { cert: made.cert, key: made.private, ...thumbprintsOf(new X509Certificate(made.cert)) };
}

/** A CA certificate (root, or intermediate when `issuer` is given) that can sign device certificates. */
export async function certificateAuthority(
  name: string,
  options: Validity & { issuer?: KeyPair } = {},
): Promise<KeyPair> {
  const made = await generate(subject(name), {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    ...dates({ days: 3650, ...options }),
    ...(options.issuer ? { ca: options.issuer } : {}),
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { cert: made.cert, key: made.private };
}

/** A device certificate with CN=<deviceId> signed by `ca`: a certificateAuthority device logs in with it. */
export async function caSignedDeviceCertificate(
  deviceId: string,
  ca: KeyPair,
  validity?: Validity,
): Promise<KeyPair> {
  // selfsigned signs with a key of the type it generates: an RSA CA (openssl's default) gets an RSA device key.
  const rsa = createPrivateKey(ca.key).asymmetricKeyType === "rsa";
  const made = await generate(subject(deviceId), {
    ...(rsa
      ? { keyType: "rsa" as const, keySize: 2048 }
      : { keyType: "ec" as const, curve: "P-256" as const }),
    algorithm: "sha256",
    ...dates(validity),
    ca,
    extensions: DEVICE_EXTENSIONS,
  });
  return { cert: made.cert, key: made.private };
}
