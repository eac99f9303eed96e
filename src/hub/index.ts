import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DEFAULT_HUB_DATA_DIR, DEFAULT_HUB_PORT } from "../shared/rules.js";
import { serveCbs } from "./amqp/cbs.js";
import { type AmqpServer, createAmqpServer } from "./amqp/server.js";
import { Authorizer } from "./auth/authorizer.js";
import { DEV_POLICIES, type SharedAccessPolicy, TUTORIAL_DEVICE } from "./auth/credentials.js";
import { parseCaCertificates } from "./auth/x509.js";
import { serveCloudToDevice } from "./c2d/endpoint.js";
import { FeedbackQueue } from "./c2d/feedback.js";
import { CloudToDeviceQueue, type QueueOptions } from "./c2d/queue.js";
import { C2dStore } from "./c2d/store.js";
import { ConnectionGate, type ConnectionLimits, resolveLimits } from "./connection-limits.js";
import { DelayedTwinSource } from "./consistency/delayed-source.js";
import { serveEvents } from "./events/endpoint.js";
import { DEFAULT_PARTITIONS } from "./events/message.js";
import { DEFAULT_RETENTION_HOURS, EventStore } from "./events/store.js";
import { lazyFrontends } from "./frontends.js";
import { createTlsListener } from "./listener.js";
import { escapeForLog } from "./log.js";
import { AMQP } from "./protocol.js";
import { DeviceRegistry } from "./registry/registry.js";
import { removeHolder, writeHolder } from "./store/lock.js";
import { SqliteStore } from "./store/sqlite.js";
import { createThrottle, type ThrottleLimits, TIERS, type Tier } from "./throttle/index.js";
import { ensureCertificates } from "./tls/certs.js";
import { amqpPortWebSockets } from "./websocket/amqp-port.js";

export { DEV_POLICIES, TUTORIAL_DEVICE } from "./auth/credentials.js";

export const DEFAULT_PORT = DEFAULT_HUB_PORT;
export const DEFAULT_DATA_DIR = DEFAULT_HUB_DATA_DIR;
/** IoT Hub's own ports: HTTPS and MQTT over TLS. */
export const STANDARD_PORTS = [443, 8883] as const;
/** Names the hub's certificate covers and its tokens may be addressed to. */
const LOCAL_NAMES = ["localhost", "127.0.0.1", "::1"];

export interface HubOptions {
  /** TLS port serving both HTTPS and MQTT; 0 picks a free one. Default 18883. */
  port?: number;
  /**
   * TLS port of the AMQP endpoint (IoT Hub's AMQP and the Event Hubs-compatible endpoint). Default: `port` + 1
   * (a free one when `port` is 0); 5671 with `standardPorts`.
   */
  amqpPort?: number;
  /** Partitions of the Event Hubs-compatible endpoint when it is created (IoT Hub: 2 to 128, default 4). */
  partitions?: number;
  /** How long device-to-cloud messages are kept, in hours (IoT Hub's default: 1 day). */
  retentionHours?: number;
  /** Consumer groups of the Event Hubs-compatible endpoint besides $Default. */
  consumerGroups?: readonly string[];
  /** Serve IoT Hub's standard ports (443 and 8883) instead, so `HostName=localhost` works unmodified. */
  standardPorts?: boolean;
  /** Where the database and certificates live. Default `./.local-hub`. */
  dataDir?: string;
  /** Keep twins in memory only (certificates go to a temporary directory removed on stop). */
  inMemory?: boolean;
  /**
   * The host name in connection strings (default "localhost"). Another name must resolve to this machine
   * (for example through /etc/hosts); the certificate and SAS audiences cover it.
   */
  hostName?: string;
  /**
   * CA certificates (PEM text) registered with the hub for X.509 CA authentication: a certificateAuthority device
   * logs in with a certificate chain leading to one of them, whose subject CN is its device ID. Default none.
   */
  caCertificates?: readonly string[];
  /** Shared access policies; default the well-known development ones. */
  policies?: readonly SharedAccessPolicy[];
  /** "full" also survives power loss (fsync per write); "normal" survives a killed hub. */
  durability?: "normal" | "full";
  /**
   * Query results lag writes by this many milliseconds, as IoT Hub's eventually consistent queries can; GET of one
   * twin stays current. Default 0 (queries see every write at once).
   */
  queryDelayMs?: number;
  /**
   * Enforce IoT Hub's operation throttles of this tier (one unit), or of explicit limits, answering 429
   * ThrottlingException over quota. Default: no throttling.
   */
  throttle?: Tier | ThrottleLimits;
  /** One line per operation; default stdout. */
  log?: (line: string) => void;
  quiet?: boolean;
  /** Connection caps and timeouts (see connection-limits.ts for the defaults and why). */
  limits?: Partial<ConnectionLimits>;
  /**
   * Cloud-to-device timings, for tests: a lock timeout shorter than IoT Hub's fixed minute, the default time to
   * live (IoT Hub's default: one hour), the feedback batching interval (IoT Hub: 15 s).
   */
  cloudToDevice?: QueueOptions & { feedbackIntervalMs?: number };
}

export type PolicyName = "iothubowner" | "service" | "registryRead" | "registryReadWrite" | "device";

export interface RunningHub {
  /** The HostName of both connection strings. */
  hostName: string;
  port: number;
  ports: number[];
  /** The AMQP port (AMQP 1.0 over TLS: `$cbs`, the Event Hubs-compatible endpoint). */
  amqpPort: number;
  /** Registers AMQP link handlers by address (see amqp/server.ts). */
  amqp: AmqpServer;
  /** EntityPath of the Event Hubs-compatible endpoint. */
  eventHubName: string;
  /** `Endpoint=sb://localhost:<amqpPort>/;SharedAccessKeyName=service;...;EntityPath=<eventHubName>`. */
  eventHubConnectionString: string;
  dataDir: string | undefined;
  caFile: string;
  caPem: string;
  /** iothubowner. */
  serviceConnectionString: string;
  connectionStringFor(policy: PolicyName | string): string;
  deviceConnectionString(deviceId?: string): string;
  /** Cloud-to-device messages pending in the device's queue. */
  cloudToDeviceDepth(deviceId: string): number;
  /** The dotenv lines the tutorial's tools read. */
  envFile(deviceId?: string): string;
  readonly connectedDevices: number;
  /** Direct methods waiting for an answer or for their device to come online. */
  readonly pendingMethods: number;
  stop(): Promise<void>;
}

export async function startHub(options: HubOptions = {}): Promise<RunningHub> {
  const sink = options.quiet
    ? () => {}
    : (options.log ?? ((line: string) => console.log(`[local-hub] ${line}`)));
  // Every line passes the one escaping function: client-chosen text cannot forge lines (see log.ts).
  const log = (line: string) => sink(escapeForLog(line));
  const queryDelayMs = options.queryDelayMs ?? 0;
  if (typeof queryDelayMs !== "number" || !Number.isFinite(queryDelayMs) || queryDelayMs < 0)
    throw new Error(`invalid query delay ${queryDelayMs}: use a number of milliseconds, 0 or more`);
  if (typeof options.throttle === "string" && !TIERS.includes(options.throttle))
    throw new Error(
      `unknown throttle tier ${JSON.stringify(options.throttle)}: use one of ${TIERS.join(", ")}`,
    );
  const policies = options.policies ?? DEV_POLICIES;
  const authorities = parseCaCertificates(options.caCertificates ?? [], "caCertificates");
  const gate = new ConnectionGate(resolveLimits(options.limits), log);
  const dataDir = options.inMemory ? undefined : resolve(options.dataDir ?? DEFAULT_DATA_DIR);
  const certDir = dataDir ?? mkdtempSync(join(tmpdir(), "local-hub-"));
  mkdirSync(certDir, { recursive: true, mode: 0o700 });

  const name = (options.hostName ?? "localhost").toLowerCase();
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(name)) {
    throw new Error(
      `invalid host name ${JSON.stringify(options.hostName)}: use a DNS name such as myhub.local`,
    );
  }
  const names = LOCAL_NAMES.includes(name) ? LOCAL_NAMES : [...LOCAL_NAMES, name];
  // The store first: it takes the data folder's lock, before anything in the folder (certificates) is touched.
  const store = new SqliteStore(dataDir, options.durability);
  let certs: Awaited<ReturnType<typeof ensureCertificates>>;
  try {
    certs = await ensureCertificates(certDir, names);
  } catch (error) {
    store.close();
    throw error;
  }
  const ports: number[] = [];
  const amqpPorts: number[] = [];
  const isOurHost = (audience: string) => {
    const m = /^(\[[^\]]*\]|[^:]+|::1)(?::(\d+))?$/.exec(audience.toLowerCase());
    if (!m) return false;
    const host = m[1].replace(/^\[|\]$/g, "");
    if (!names.includes(host)) return false;
    if (m[2] === undefined) return options.standardPorts === true;
    return ports.includes(Number(m[2])) || amqpPorts.includes(Number(m[2]));
  };

  const registry = new DeviceRegistry(store);
  // Queries lag writes from the first one on (the tutorial device below included).
  const delayed = queryDelayMs > 0 ? new DelayedTwinSource(registry, queryDelayMs) : undefined;
  if (delayed) registry.on("recordChanged", (id, before) => delayed.recordChanged(id, before));
  const throttle = options.throttle ? createThrottle({ limits: options.throttle }) : undefined;
  // The tutorial device gets the public development key only alongside the public development policies; with
  // your own policies (--keys-file) it gets generated keys, and a key left public by an earlier run is replaced.
  const devKeys = policies === DEV_POLICIES;
  if (registry.size === 0) {
    registry.identities.create(
      TUTORIAL_DEVICE.deviceId,
      devKeys
        ? {
            authentication: {
              symmetricKey: {
                primaryKey: TUTORIAL_DEVICE.primaryKey,
                secondaryKey: TUTORIAL_DEVICE.secondaryKey,
              },
            },
          }
        : {},
    );
    log(`registered the tutorial device ${TUTORIAL_DEVICE.deviceId}${devKeys ? "" : " with generated keys"}`);
  } else if (!devKeys) {
    const tutorial = registry.find(TUTORIAL_DEVICE.deviceId);
    const publicKeys = [TUTORIAL_DEVICE.primaryKey, TUTORIAL_DEVICE.secondaryKey];
    if (
      tutorial &&
      (publicKeys.includes(tutorial.primaryKey) || publicKeys.includes(tutorial.secondaryKey))
    ) {
      const fresh = (key: string) => (publicKeys.includes(key) ? randomBytes(32).toString("base64") : key);
      registry.identities.update(
        TUTORIAL_DEVICE.deviceId,
        {
          authentication: {
            symmetricKey: {
              primaryKey: fresh(tutorial.primaryKey),
              secondaryKey: fresh(tutorial.secondaryKey),
            },
          },
        },
        "*",
      );
      log(`replaced the public development keys of ${TUTORIAL_DEVICE.deviceId} with generated ones`);
    }
  }
  const authorizer = new Authorizer(policies, isOurHost, (id) => registry.find(id), Date.now, authorities);
  if (authorities.length > 0)
    log(`X.509 CA authentication trusts ${authorities.length} registered CA certificate(s)`);
  // MQTT (aedes) and HTTPS (fastify) load once the port is bound: see frontends.ts.
  const events = new EventStore(store.database, {
    partitions: options.partitions ?? DEFAULT_PARTITIONS,
    retentionHours: options.retentionHours ?? DEFAULT_RETENTION_HOURS,
    generationIdOf: (id) => registry.find(id)?.generationId ?? "",
  });
  // Cloud-to-device messages: durable per-device queues and feedback (c2d/), reaching devices through the MQTT
  // front end once it is loaded (the channel is asked for only on a delivery, once the front ends below exist).
  const c2dStore = new C2dStore(store.database);
  const feedback = new FeedbackQueue(c2dStore, {
    hubName: name.split(".")[0],
    intervalMs: options.cloudToDevice?.feedbackIntervalMs,
    log,
  });
  const queue = new CloudToDeviceQueue(
    c2dStore,
    feedback,
    () => frontends.mqtt?.devicebound,
    (id) => registry.find(id)?.generationId ?? "",
    log,
    options.cloudToDevice,
  );
  registry.cloudToDeviceCount = (id) => queue.depth(id);
  const frontends = lazyFrontends({
    registry,
    authorizer,
    gate,
    log,
    throttle,
    querySource: delayed,
    onTelemetry: (m) => events.append(m),
    // AMQP over WebSockets (called only on an upgrade, once the server below exists).
    amqp: (stream) => amqp.handle(stream),
    cloudToDevice: queue,
  });
  // The registry tells the device front end about desired changes and revocations.
  registry.on("desiredChanged", (id, patch, version) => frontends.mqtt?.pushDesired(id, patch, version));
  registry.on("deviceRevoked", (id) => {
    frontends.mqtt?.disconnect(id);
    // Deleted (not only disabled or re-keyed): its cloud-to-device queue and unread feedback go with it.
    if (!registry.find(id)) queue.purgeDevice(id);
  });
  const { targets: deviceAndRestTargets } = frontends;
  // AMQP (rhea loads on the first AMQP connection, like the other front ends): $cbs and the built-in endpoint.
  const amqp = createAmqpServer({ authorizer, log, containerId: name, opened: (s) => gate.activate(s) });
  serveCbs(amqp, authorizer, log);
  // The Event Hubs-compatible name: IoT Hub derives it from the hub's name, here the host name's first label.
  const eventHubName = name.split(".")[0];
  serveEvents({
    server: amqp,
    authorizer,
    store: events,
    entity: eventHubName,
    consumerGroups: options.consumerGroups ?? [],
    createdAt: new Date(),
    log,
  });
  serveCloudToDevice({ server: amqp, queue, feedback, deviceExists: (id) => !!registry.find(id), log });
  const amqpTargets = { amqp: (socket: import("node:stream").Duplex) => amqp.handle(socket) };
  const targets = { ...deviceAndRestTargets, ...amqpTargets };
  // AMQP over WebSockets on the AMQP port too, where the Event Hubs connection string points (websocket/amqp-port.ts).
  const amqpPortWs = amqpPortWebSockets({ amqp: amqpTargets.amqp, gate, log });
  const amqpPortTargets = {
    ...amqpTargets,
    websocket: (socket: import("node:stream").Duplex) => amqpPortWs.handle(socket),
  };

  const listeners: Array<ReturnType<typeof createTlsListener>> = [];
  const close = async () => {
    // Direct method calls waiting for devices are answered (503) before the connections drop.
    await frontends.closeMethods();
    await Promise.all(listeners.map((l) => l.close()));
    amqpPortWs.close();
    amqp.close();
    await frontends.close();
    // Device-side changes still waiting (the last disconnections, lastActivityTimes not yet written) are kept.
    registry.close();
    events.close();
    queue.close();
    feedback.close();
    // The note goes before the lock: once the lock is free, the note may already be the next hub's.
    if (dataDir) removeHolder(dataDir);
    store.close();
    if (!dataDir) rmSync(certDir, { recursive: true, force: true });
  };

  try {
    const wanted = options.standardPorts ? [...STANDARD_PORTS] : [options.port ?? DEFAULT_PORT];
    for (const port of wanted) {
      // Loopback only: the development keys are public, so the hub must not be reachable from the network.
      const v4 = createTlsListener(certs, targets, gate, log);
      listeners.push(v4);
      const bound = await listen(v4.server, port, "127.0.0.1");
      ports.push(bound);
      // Also on ::1 where the machine has it, since "localhost" may resolve there first.
      const v6 = createTlsListener(certs, targets, gate, log);
      try {
        await listen(v6.server, bound, "::1");
        listeners.push(v6);
      } catch {
        // No IPv6 loopback here; IPv4 is enough.
      }
    }
    // The AMQP port, on the same loopback addresses and behind the same gate.
    const wantedAmqp = options.standardPorts
      ? AMQP.standardPort
      : (options.amqpPort ?? (options.port === 0 ? 0 : ports[0] + 1));
    const amqp4 = createTlsListener(certs, amqpPortTargets, gate, log);
    listeners.push(amqp4);
    let amqpBound: number;
    try {
      amqpBound = await listen(amqp4.server, wantedAmqp, "127.0.0.1");
    } catch (error) {
      // The default (port + 1) may be taken by anything; a port that was asked for is not replaced.
      const defaulted = options.amqpPort === undefined && !options.standardPorts && wantedAmqp !== 0;
      if (!defaulted || (error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
      amqpBound = await listen(amqp4.server, 0, "127.0.0.1");
      log(`port ${wantedAmqp} is in use: AMQP listens on ${amqpBound} instead (--amqp-port to choose)`);
    }
    amqpPorts.push(amqpBound);
    const amqp6 = createTlsListener(certs, amqpPortTargets, gate, log);
    try {
      await listen(amqp6.server, amqpBound, "::1");
      listeners.push(amqp6);
    } catch {
      // No IPv6 loopback here.
    }
  } catch (error) {
    await close();
    throw error;
  }

  const port = ports[0];
  if (dataDir) writeHolder(dataDir, { pid: process.pid, port });
  const hostName = options.standardPorts ? name : `${name}:${port}`;
  const connectionStringFor = (name: string) => {
    const policy = policies.find((p) => p.name === name);
    if (!policy) throw new Error(`No shared access policy named ${name}`);
    return `HostName=${hostName};SharedAccessKeyName=${policy.name};SharedAccessKey=${policy.primaryKey}`;
  };
  const deviceConnectionString = (deviceId: string = TUTORIAL_DEVICE.deviceId) => {
    const device = registry.require(deviceId);
    return `HostName=${hostName};DeviceId=${deviceId};SharedAccessKey=${device.primaryKey}`;
  };
  const owner =
    policies.find(
      (p) => p.permissions.includes("RegistryWrite") && p.permissions.includes("ServiceConnect"),
    ) ?? policies[0];

  // The built-in endpoint's connection string names a policy with ServiceConnect, as the portal shows "service".
  const reader =
    policies.find((p) => p.name === "service" && p.permissions.includes("ServiceConnect")) ??
    policies.find((p) => p.permissions.includes("ServiceConnect")) ??
    owner;
  const amqpHost = options.standardPorts ? name : `${name}:${amqpPorts[0]}`;
  const eventHubConnectionString = `Endpoint=sb://${amqpHost}/;SharedAccessKeyName=${reader.name};SharedAccessKey=${reader.primaryKey};EntityPath=${eventHubName}`;

  let stopped: Promise<void> | undefined;
  return {
    hostName,
    port,
    ports,
    amqpPort: amqpPorts[0],
    amqp,
    eventHubName,
    eventHubConnectionString,
    dataDir,
    caFile: certs.caFile,
    caPem: certs.caPem,
    serviceConnectionString: connectionStringFor(owner.name),
    connectionStringFor,
    deviceConnectionString,
    cloudToDeviceDepth: (id) => queue.depth(id),
    envFile: (deviceId = TUTORIAL_DEVICE.deviceId) =>
      [
        `IOTHUB_CONNECTION_STRING=${connectionStringFor(owner.name)}`,
        `IOTHUB_DEVICE_CONNECTION_STRING=${deviceConnectionString(deviceId)}`,
        `IOTHUB_DEVICE_ID=${deviceId}`,
        `IOTHUB_CA_FILE=${certs.caFile}`,
        `EVENTHUB_CONNECTION_STRING=${eventHubConnectionString}`,
        "",
      ].join("\n"),
    get connectedDevices() {
      return frontends.mqtt?.connectedCount ?? 0;
    },
    get pendingMethods() {
      return frontends.pendingMethods;
    },
    stop: () => {
      stopped ??= close();
      return stopped;
    },
  };
}

function listen(server: import("node:net").Server, port: number, host: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolvePort((server.address() as AddressInfo).port);
    });
  });
}
