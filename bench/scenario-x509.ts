/**
 * Scenario 5: the cost of X.509 device logins next to SAS logins on the same hub. K devices of each kind
 * (SAS, selfSigned thumbprint, certificateAuthority) connect over MQTT/TLS, 20 handshakes at a time; the figures are
 * connects per second and each X.509 kind's rate as a fraction of the SAS rate, measured alternately in each rep.
 */
import {
  caSignedDeviceCertificate,
  certificateAuthority,
  type KeyPair,
  selfSignedDeviceCertificate,
} from "../src/hub/tls/device-certs.js";
import { closeAll, connectMany, countingRegistry, type DeviceTarget } from "./clients.js";
import type { Report } from "./report.js";
import { startHubInTemp } from "./servers.js";
import { figure } from "./stats.js";

const S = "5 X.509";
const KEY = Buffer.from("bench-x509-scenario-sas-key-0001").toString("base64");

export async function scenarioX509(
  options: { devices: number; reps: number },
  report: Report,
): Promise<Record<string, unknown>> {
  const k = options.devices;
  const ca = await certificateAuthority("bench device CA");
  const kinds = ["sas", "selfSigned", "certificateAuthority"] as const;
  const ids = Object.fromEntries(
    kinds.map((kind) => [kind, Array.from({ length: k }, (_, i) => `x509-${kind}-${i}`)]),
  ) as Record<(typeof kinds)[number], string[]>;
  const certs = new Map<string, KeyPair>();
  const thumbprints = new Map<string, string>();
  for (const id of ids.selfSigned) {
    const made = await selfSignedDeviceCertificate(id);
    certs.set(id, made);
    thumbprints.set(id, made.sha256);
  }
  for (const id of ids.certificateAuthority) certs.set(id, await caSignedDeviceCertificate(id, ca));

  const { hub, remove } = await startHubInTemp("bench-s5-", [ca.cert]);
  const rates: Record<string, number[]> = { sas: [], selfSigned: [], certificateAuthority: [] };
  try {
    const { registry, close } = countingRegistry(hub.info.serviceConnectionString!, hub.info.caPem);
    const identity = (kind: (typeof kinds)[number], id: string) =>
      kind === "sas"
        ? { symmetricKey: { primaryKey: KEY, secondaryKey: KEY } }
        : kind === "selfSigned"
          ? { type: "selfSigned", x509Thumbprint: { primaryThumbprint: thumbprints.get(id) } }
          : { type: "certificateAuthority" };
    for (const kind of kinds) {
      for (let first = 0; first < k; first += 100) {
        await registry.addDevices(
          ids[kind]
            .slice(first, first + 100)
            // biome-ignore lint/suspicious/noExplicitAny: X.509 identity fields are not in the SDK's typings
            .map((id) => ({ deviceId: id, status: "enabled", authentication: identity(kind, id) }) as any),
        );
      }
    }
    close();
    const base: DeviceTarget = { port: hub.info.port, caPem: hub.info.caPem, hostName: hub.info.hostName };
    const targets: Record<(typeof kinds)[number], DeviceTarget> = {
      sas: { ...base, key: KEY },
      selfSigned: { ...base, certificateOf: (id) => certs.get(id)! },
      certificateAuthority: { ...base, certificateOf: (id) => certs.get(id)! },
    };
    for (let rep = 0; rep < Math.max(1, options.reps); rep++) {
      for (const kind of kinds) {
        const connected = await connectMany(targets[kind], ids[kind]);
        rates[kind]!.push(connected.perSecond);
        await closeAll(connected.clients);
      }
    }
  } finally {
    await remove();
  }
  const n = k.toLocaleString("en-US");
  report.add(S, `K=${n}: SAS connects/s`, figure(rates.sas!, "/s"));
  for (const kind of ["selfSigned", "certificateAuthority"] as const) {
    report.add(S, `K=${n}: ${kind} connects/s`, figure(rates[kind]!, "/s"));
    report.add(
      S,
      `K=${n}: ${kind} / SAS connect rate`,
      figure(
        rates[kind]!.map((r, i) => r / rates.sas![i]!),
        "%",
      ),
    );
  }
  return { devices: k, rates };
}
