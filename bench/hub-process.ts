/**
 * The server side of the benchmark, in its own process so that it does not share a core with the load
 * generator. Roles (argv[2]):
 *  - "hub": the local hub on a free port over `dataDir` (the product's startHub, logging off);
 *  - "broker": a bare aedes broker over TLS on loopback (the ceiling for scenario 2), same certificate type;
 *  - "seed": writes `count` devices with tags and reported properties straight into a data dir through the
 *    hub's own DeviceRegistry and SqliteStore (scenario 3's 100,000 twins in seconds), then exits.
 * It answers the parent's IPC messages: stats, gc, profile-start / profile-stop (a CPU profile of one phase,
 * through the inspector) and stop.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:tls";
import { Aedes } from "aedes";
import { startHub, TUTORIAL_DEVICE } from "../src/hub/index.js";
import { DeviceRegistry } from "../src/hub/registry/registry.js";
import { SqliteStore } from "../src/hub/store/sqlite.js";
import type { RecordChange, Store } from "../src/hub/store/store.js";
import { ensureCertificates } from "../src/hub/tls/certs.js";
import type { DeviceRecord } from "../src/hub/twin/device.js";
import { deviceId, reportedFor, tagsFor } from "./dataset.js";

export interface ServerInfo {
  hostName: string;
  port: number;
  caPem: string;
  serviceConnectionString?: string;
  envFile?: string;
  /** The hub's Event Hubs-compatible endpoint and its CA file (scenario 5's consumer trusts it). */
  eventHubConnectionString?: string;
  caFile?: string;
  startupMs: number;
}

export interface ServerStats {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  /** process.cpuUsage() user + system, microseconds. */
  cpuMicros: number;
  connected: number;
}

export interface SeedArgs {
  dataDir: string;
  count: number;
  prefix: string;
  /** Every seeded device gets this primary key, so the load generator can sign tokens for any of them. */
  key: string;
}

const send = (message: unknown) => process.send?.(message);
const [role, argText] = process.argv.slice(2);
const args = JSON.parse(argText ?? "{}");

function stats(connected: number): ServerStats {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  return {
    rss: mem.rss,
    heapUsed: mem.heapUsed,
    heapTotal: mem.heapTotal,
    external: mem.external,
    cpuMicros: cpu.user + cpu.system,
    connected,
  };
}

let session: Session | undefined;
/** Inspector calls for profiling one phase of a run (the parent asks for it around what it measures). */
function post(method: string): Promise<unknown> {
  if (!session) {
    session = new Session();
    session.connect();
  }
  return new Promise((resolve, reject) =>
    session!.post(method, (error, result) => (error ? reject(error) : resolve(result))),
  );
}

function serve(info: ServerInfo, connected: () => number, stop: () => Promise<void>) {
  process.on("message", async (m: { cmd: string; dir?: string; name?: string }) => {
    if (m.cmd === "stats") send({ stats: stats(connected()) });
    if (m.cmd === "gc") {
      (globalThis as { gc?: () => void }).gc?.();
      send({ gc: true });
    }
    if (m.cmd === "profile-start") {
      await post("Profiler.enable");
      await post("Profiler.start");
      send({ profiling: true });
    }
    if (m.cmd === "profile-stop") {
      const { profile } = (await post("Profiler.stop")) as { profile: unknown };
      const file = join(m.dir ?? tmpdir(), `${m.name ?? role}.cpuprofile`);
      writeFileSync(file, JSON.stringify(profile));
      send({ profile: file });
    }
    if (m.cmd === "stop") {
      await stop();
      send({ stopped: true });
      // Leave through a normal exit so that --cpu-prof can write its profile.
      setTimeout(() => process.exit(0), 50);
    }
  });
  process.on("disconnect", () => process.exit(0));
  send({ ready: info });
}

/**
 * Collects the registry's writes (per device, the last record and every part written) and stores them in one
 * transaction per batch.
 */
class BatchingStore implements Store {
  private pending = new Map<string, RecordChange>();
  constructor(private readonly inner: SqliteStore) {}
  loadAll(): DeviceRecord[] {
    return this.inner.loadAll();
  }
  write(changes: readonly RecordChange[], deleted: readonly string[] = []): void {
    for (const id of deleted) this.delete(id);
    for (const { record, parts } of changes) {
      const before = this.pending.get(record.deviceId)?.parts ?? 0;
      this.pending.set(record.deviceId, { record, parts: before | parts });
    }
  }
  delete(id: string): void {
    this.flush();
    this.inner.delete(id);
  }
  flush(): void {
    this.inner.write([...this.pending.values()]);
    this.pending.clear();
  }
  close(): void {
    this.inner.close();
  }
}

async function seed({ dataDir, count, prefix, key }: SeedArgs): Promise<void> {
  const started = Date.now();
  const store = new BatchingStore(new SqliteStore(dataDir));
  const registry = new DeviceRegistry(store);
  // What startHub does for an empty store, so that the hub on this directory looks like any other.
  registry.identities.create(TUTORIAL_DEVICE.deviceId, {
    authentication: {
      symmetricKey: { primaryKey: TUTORIAL_DEVICE.primaryKey, secondaryKey: TUTORIAL_DEVICE.secondaryKey },
    },
  });
  const batch = 1000;
  for (let first = 0; first < count; first += batch) {
    const inputs = [];
    for (let i = first; i < Math.min(count, first + batch); i++) {
      inputs.push({
        id: deviceId(prefix, i),
        input: { authentication: { symmetricKey: { primaryKey: key, secondaryKey: key } } },
      });
    }
    registry.identities.createMany(inputs);
    for (let i = first; i < Math.min(count, first + batch); i++) {
      const id = deviceId(prefix, i);
      registry.twins.updateTwin(id, { tags: tagsFor(i) }, undefined, false);
      const reported = reportedFor(i);
      if (reported) registry.twins.updateReported(id, reported);
    }
    // Reported patches are group-committed by the registry (their lastActivityTime written lazily): write them
    // all, then the batch.
    registry.flush();
    store.flush();
  }
  store.close();
  process.send?.({ seeded: { count, ms: Date.now() - started } }, () => process.exit(0));
}

async function hub(): Promise<void> {
  const started = Date.now();
  const running = await startHub({
    port: 0,
    dataDir: args.dataDir,
    quiet: true,
    caCertificates: args.caCertificates,
  });
  serve(
    {
      hostName: running.hostName,
      port: running.port,
      caPem: running.caPem,
      serviceConnectionString: running.serviceConnectionString,
      envFile: running.envFile(),
      eventHubConnectionString: running.eventHubConnectionString,
      caFile: running.caFile,
      startupMs: Date.now() - started,
    },
    () => running.connectedDevices,
    () => running.stop(),
  );
}

async function broker(): Promise<void> {
  const started = Date.now();
  const certDir = mkdtempSync(join(tmpdir(), "bench-broker-"));
  const certs = await ensureCertificates(certDir, ["localhost", "127.0.0.1", "::1"]);
  const aedes = await Aedes.createBroker();
  const server = createServer({ cert: certs.cert, key: certs.key, minVersion: "TLSv1.2" }, (socket) =>
    aedes.handle(socket),
  );
  server.on("connection", (socket) => socket.setNoDelay(true));
  server.on("tlsClientError", (_e, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  serve(
    { hostName: `localhost:${port}`, port, caPem: certs.caPem, startupMs: Date.now() - started },
    () => aedes.connectedClients,
    async () => {
      server.close();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      rmSync(certDir, { recursive: true, force: true });
    },
  );
}

const roles: Record<string, () => Promise<void>> = { hub, broker, seed: () => seed(args as SeedArgs) };
const run = roles[role ?? ""];
if (!run) {
  console.error(`unknown role ${role}`);
  process.exit(2);
}
run().catch((error) => {
  send({ error: String(error?.stack ?? error) });
  process.exit(1);
});
