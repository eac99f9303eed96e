import { constants } from "node:fs";
import { mkdir, open, readFile, rm } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { checkDeviceId } from "./registry/identity-fields.js";
import {
  caSignedDeviceCertificate,
  certificateAuthority,
  type KeyPair,
  selfSignedDeviceCertificate,
} from "./tls/device-certs.js";

/**
 * `local-hub cert`: certificates for trying X.509 device authentication against the local hub (development
 * material: unencrypted keys, owner-only files). Three kinds:
 * - `self-signed --device-id <id>`: a device certificate whose thumbprint you register on a selfSigned device;
 * - `ca`: a device CA to register with the hub (`local-hub --ca-cert <file>`);
 * - `device --device-id <id> --ca <cert> --ca-key <key>`: a device certificate (CN = device ID) signed by that CA,
 *   for a certificateAuthority device.
 * Files are never overwritten: an existing file is an error naming it.
 */

export interface CertFlags {
  out: string;
  days: number;
}

const out = (line = "") => console.log(line);
const shown = (file: string) => relative(process.cwd(), file) || file;

export async function selfSignedCommand(flags: CertFlags & { deviceId: string }): Promise<void> {
  checkId(flags.deviceId);
  const made = await selfSignedDeviceCertificate(flags.deviceId, { days: flags.days });
  const [cert, key] = await writePair(flags.out, flags.deviceId, made);
  out(`wrote ${shown(cert)} (certificate, CN=${flags.deviceId}) and ${shown(key)} (private key, mode 0600)`);
  out(`SHA-1 thumbprint:   ${made.sha1}`);
  out(`SHA-256 thumbprint: ${made.sha256}`);
  out(
    "Register the device with one of them (authentication type selfSigned), for example with azure-iothub:",
  );
  out(
    `  registry.create({ deviceId: "${flags.deviceId}", authentication: { type: "selfSigned", x509Thumbprint: { primaryThumbprint: "${made.sha1}" } } })`,
  );
  out(`Device connection string: HostName=<hub host>;DeviceId=${flags.deviceId};x509=true`);
  out(`and in the device: client.setOptions({ cert: <${shown(cert)}>, key: <${shown(key)}> })`);
}

export async function caCommand(flags: CertFlags & { name: string }): Promise<void> {
  const made = await certificateAuthority(flags.name, { days: flags.days });
  const [cert, key] = await writePair(flags.out, "device-ca", made);
  out(`wrote ${shown(cert)} (CA certificate, CN=${flags.name}) and ${shown(key)} (private key, mode 0600)`);
  out(`Register it with the hub: local-hub --ca-cert ${shown(cert)}`);
  out(
    `Then sign device certificates: local-hub cert device --device-id <id> --ca ${shown(cert)} --ca-key ${shown(key)}`,
  );
}

export async function deviceCommand(
  flags: CertFlags & { deviceId: string; ca: string; caKey: string },
): Promise<void> {
  checkId(flags.deviceId);
  const ca: KeyPair = {
    cert: await readPem(flags.ca, "--ca"),
    key: await readPem(flags.caKey, "--ca-key"),
  };
  let made: KeyPair;
  try {
    made = await caSignedDeviceCertificate(flags.deviceId, ca, { days: flags.days });
  } catch (error) {
    throw new Error(
      `cannot sign with --ca ${flags.ca} and --ca-key ${flags.caKey} (${(error as Error).message}): use a CA made by 'local-hub cert ca', or sign with openssl (see the docs)`,
    );
  }
  const [cert, key] = await writePair(flags.out, flags.deviceId, made);
  out(`wrote ${shown(cert)} (certificate, CN=${flags.deviceId}, signed by ${shown(resolve(flags.ca))})`);
  out(`and ${shown(key)} (private key, mode 0600)`);
  out(
    `Register the device with authentication type certificateAuthority (no keys, no thumbprints), start the hub with --ca-cert ${flags.ca},`,
  );
  out(
    `and connect with: HostName=<hub host>;DeviceId=${flags.deviceId};x509=true plus this certificate and key.`,
  );
}

function checkId(deviceId: string): void {
  try {
    checkDeviceId(deviceId);
  } catch (error) {
    throw new Error(`--device-id: ${(error as Error).message}`);
  }
}

async function readPem(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    throw new Error(
      `cannot read ${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}

/** Writes `<name>.pem` and `<name>-key.pem` in `dir`, never over an existing file; the key owner-only. */
async function writePair(dir: string, name: string, pair: KeyPair): Promise<[string, string]> {
  // Device IDs may hold characters that are awkward in file names; those become "_".
  const base = name.replace(/[^A-Za-z0-9._-]/g, "_");
  await mkdir(resolve(dir), { recursive: true });
  const cert = join(resolve(dir), `${base}.pem`);
  const key = join(resolve(dir), `${base}-key.pem`);
  await writeNew(key, pair.key, 0o600);
  try {
    await writeNew(cert, pair.cert, 0o644);
  } catch (error) {
    await rm(key, { force: true });
    throw error;
  }
  return [cert, key];
}

async function writeNew(file: string, text: string, mode: number): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST")
      throw new Error(`${shown(file)} already exists: remove it or choose another folder with --out`);
    throw error;
  }
  try {
    await handle.writeFile(text);
    await handle.chmod(mode);
  } finally {
    await handle.close();
  }
}
