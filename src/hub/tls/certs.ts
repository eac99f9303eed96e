import { X509Certificate } from "node:crypto";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * selfsigned (and the forge library under it) takes about 0.2 s to load, more than the rest of the hub's
 * start-up: it is loaded only when a certificate has to be made or renewed, not on every restart.
 */
async function generate(...args: Parameters<typeof import("selfsigned").generate>) {
  const selfsigned = await import("selfsigned");
  return selfsigned.generate(...args);
}

export interface HubCertificates {
  caFile: string;
  caPem: string;
  cert: string;
  key: string;
}

const FILES = { ca: "ca.pem", caKey: "ca-key.pem", cert: "server.pem", key: "server-key.pem" } as const;
const DAY = 86_400_000;
/** The server certificate is renewed this long before it expires. */
const RENEW_BEFORE = 30 * DAY;

/**
 * Loads the hub's CA and server certificate from `dir`, creating them on first start.
 * ECDSA P-256 keeps TLS handshakes cheap (many devices connect at once in load tests).
 * Private keys are written readable by the owner only.
 */
export async function ensureCertificates(
  dir: string,
  hostNames: readonly string[],
): Promise<HubCertificates> {
  const path = (name: keyof typeof FILES) => join(dir, FILES[name]);
  let ca = await readPair(path("ca"), path("caKey"));
  if (!ca || expiresSoon(ca.cert, 0)) {
    const now = new Date();
    const made = await generate([{ name: "commonName", value: "local-hub development CA" }], {
      keyType: "ec",
      curve: "P-256",
      algorithm: "sha256",
      notBeforeDate: new Date(now.getTime() - DAY),
      notAfterDate: new Date(now.getTime() + 3650 * DAY),
      extensions: [
        { name: "basicConstraints", cA: true, pathLenConstraint: 0, critical: true },
        { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
      ],
    });
    ca = { cert: made.cert, key: made.private };
    await writeSecret(path("caKey"), ca.key);
    await writeFile(path("ca"), ca.cert, { mode: 0o644 });
  }
  let server = await readPair(path("cert"), path("key"));
  if (
    !server ||
    expiresSoon(server.cert, RENEW_BEFORE) ||
    !signedBy(server.cert, ca.cert) ||
    !coversHosts(server.cert, hostNames)
  ) {
    const now = new Date();
    const made = await generate([{ name: "commonName", value: "localhost" }], {
      keyType: "ec",
      curve: "P-256",
      algorithm: "sha256",
      notBeforeDate: new Date(now.getTime() - DAY),
      notAfterDate: new Date(now.getTime() + 397 * DAY),
      ca: { key: ca.key, cert: ca.cert },
      extensions: [
        { name: "basicConstraints", cA: false },
        { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
        { name: "extKeyUsage", serverAuth: true },
        {
          name: "subjectAltName",
          altNames: hostNames.map((h) =>
            /^[\d.]+$|:/.test(h) ? { type: 7 as const, ip: h } : { type: 2 as const, value: h },
          ),
        },
      ],
    });
    server = { cert: made.cert, key: made.private };
    await writeSecret(path("key"), server.key);
    await writeFile(path("cert"), server.cert, { mode: 0o644 });
  }
  return { caFile: path("ca"), caPem: ca.cert, cert: server.cert, key: server.key };
}

async function readPair(
  certFile: string,
  keyFile: string,
): Promise<{ cert: string; key: string } | undefined> {
  try {
    const [cert, key] = await Promise.all([readFile(certFile, "utf8"), readFile(keyFile, "utf8")]);
    new X509Certificate(cert);
    return { cert, key };
  } catch {
    return undefined;
  }
}

async function writeSecret(file: string, content: string): Promise<void> {
  await writeFile(file, content, { mode: 0o600 });
  // writeFile's mode applies only when it creates the file.
  await chmod(file, 0o600);
}

function expiresSoon(pem: string, margin: number): boolean {
  return new Date(new X509Certificate(pem).validTo).getTime() - margin < Date.now();
}

function signedBy(pem: string, caPem: string): boolean {
  return new X509Certificate(pem).checkIssued(new X509Certificate(caPem));
}

function coversHosts(pem: string, hostNames: readonly string[]): boolean {
  const cert = new X509Certificate(pem);
  return hostNames.every((h) => (/^[\d.]+$|:/.test(h) ? cert.checkIP(h) : cert.checkHost(h)) !== undefined);
}
