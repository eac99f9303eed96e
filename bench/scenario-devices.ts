/**
 * Scenario 2, device side: K devices connected over MQTT/TLS send reported-property patches
 * ($iothub/twin/PATCH/properties/reported/?$rid=N, answered on $iothub/twin/res/204/?$rid=N&$version=V), at a
 * fixed offered load and at saturation; then the same K clients send plain QoS 1 publishes to a bare aedes
 * broker over TLS (the ceiling). The load generator (this process) uses mqtt.js with SAS tokens made by the
 * hub's own makeToken; the hub and the broker each run in their own process.
 */
import type { MqttClient } from "mqtt";
import { closeAll, connectMany, registerSasDevices, subscribe } from "./clients.js";
import { deviceId } from "./dataset.js";
import type { Report } from "./report.js";
import { cpuShare, type Server, startHubInTemp, startServer } from "./servers.js";
import { type Figure, figure, Latencies, repeat } from "./stats.js";

const S = "2 devices";
const KEY = Buffer.from("bench-scenario-2-device-key-0001").toString("base64");
const FIXED_RATE = 1000;
const WARMUP_S = 1;
/** Requests in flight over all clients at saturation (each client keeps its share). */
const IN_FLIGHT = 500;

export interface DevicesOptions {
  devices: number[];
  duration: number;
  reps: number;
  profileDir?: string;
}

export type Ack = (ok: boolean) => void;
/** Sends one request on client `c` and calls `ack` when it is answered. */
export type Sender = (c: number, ack: Ack) => void;

export interface LoadResult {
  ackedPerSecond: number;
  p50: number;
  p99: number;
  errors: number;
  serverCpu: number;
  generatorCpu: number;
  /** Server CPU time per acknowledged message, microseconds: less sensitive to other load than rates. */
  serverCpuPerMessage: number;
}

/** The hub's twin request/response: one pending map per client, keyed by $rid. */
export function hubSender(clients: MqttClient[]): Sender {
  const pending = clients.map(() => new Map<string, Ack>());
  const seq = clients.map(() => 0);
  const prefix = "$iothub/twin/res/";
  clients.forEach((client, c) => {
    client.on("message", (topic: string) => {
      if (!topic.startsWith(prefix)) return;
      const at = topic.indexOf("?$rid=");
      const end = topic.indexOf("&", at);
      const rid = topic.slice(at + 6, end < 0 ? undefined : end);
      const ack = pending[c].get(rid);
      if (!ack) return;
      pending[c].delete(rid);
      ack(topic.startsWith("204/", prefix.length));
    });
  });
  return (c, ack) => {
    const rid = String(++seq[c]);
    pending[c].set(rid, ack);
    const payload = `{"connectivity":{"type":"cellular"},"seq":${seq[c]}}`;
    clients[c].publish(`$iothub/twin/PATCH/properties/reported/?$rid=${rid}`, payload, { qos: 0 });
  };
}

/** The ceiling: plain QoS 1 publishes, acknowledged by the broker's PUBACK. */
function brokerSender(clients: MqttClient[], ids: string[]): Sender {
  const seq = clients.map(() => 0);
  return (c, ack) => {
    const payload = `{"connectivity":{"type":"cellular"},"seq":${++seq[c]}}`;
    clients[c].publish(`devices/${ids[c]}/messages/events/`, payload, { qos: 1 }, (error) => ack(!error));
  };
}

/**
 * Drives `send` for warm-up + `duration` seconds, either open-loop at `rate` requests/s spread round-robin
 * over the clients, or closed-loop (rate undefined) with `window` requests in flight per client. Only requests
 * sent after the warm-up and answered before the end count.
 */
export async function drive(
  server: Server,
  clientCount: number,
  send: Sender,
  duration: number,
  rate: number | undefined,
  window: number,
  /** How long to wait, at most, for what is still in flight once the measurement ends. */
  drainMs = 10_000,
): Promise<LoadResult> {
  const latencies = new Latencies();
  let errors = 0;
  let acked = 0;
  let measuring = false;
  let running = true;
  let outstanding = 0;
  const one = (c: number) => {
    const t = performance.now();
    const counted = measuring;
    outstanding++;
    send(c, (ok) => {
      outstanding--;
      if (counted && measuring) {
        if (ok) {
          acked++;
          latencies.add(performance.now() - t);
        } else errors++;
      }
      if (rate === undefined && running) one(c);
    });
  };

  let timer: NodeJS.Timeout | undefined;
  const start = performance.now();
  if (rate === undefined) {
    for (let c = 0; c < clientCount; c++) for (let w = 0; w < window; w++) one(c);
  } else {
    let sent = 0;
    let next = 0;
    timer = setInterval(() => {
      const due = Math.floor(((performance.now() - start) / 1000) * rate);
      for (; sent < due; sent++) {
        one(next);
        next = (next + 1) % clientCount;
      }
    }, 1);
  }
  await sleep(WARMUP_S * 1000);
  const before = await server.stats();
  const genBefore = process.cpuUsage();
  measuring = true;
  const t0 = performance.now();
  await sleep(duration * 1000);
  measuring = false;
  const seconds = (performance.now() - t0) / 1000;
  const after = await server.stats();
  const gen = process.cpuUsage(genBefore);
  running = false;
  if (timer) clearInterval(timer);
  // Let what is in flight drain before the next measurement.
  const drainUntil = performance.now() + drainMs;
  while (outstanding > 0 && performance.now() < drainUntil) await sleep(20);
  return {
    ackedPerSecond: acked / seconds,
    p50: latencies.p(50),
    p99: latencies.p(99),
    errors,
    serverCpu: cpuShare(before, after, seconds),
    generatorCpu: (gen.user + gen.system) / 1e6 / seconds,
    serverCpuPerMessage: acked > 0 ? (after.cpuMicros - before.cpuMicros) / acked : Number.NaN,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const LOAD_UNITS = {
  ackedPerSecond: "/s",
  p50: "ms",
  p99: "ms",
  errors: "",
  serverCpu: "%",
  generatorCpu: "%",
  serverCpuPerMessage: "us",
} as const;

export async function measure(
  server: Server,
  clients: number,
  send: Sender,
  options: DevicesOptions,
  window: number,
  profileName: string,
): Promise<{ fixed: Record<keyof LoadResult, Figure>; saturated: Record<keyof LoadResult, Figure> }> {
  const fixedRuns: LoadResult[] = [];
  const saturated = await repeat(options.reps, LOAD_UNITS, async (rep) => {
    // Fixed load and saturation alternate so both see the same machine noise.
    fixedRuns.push(await drive(server, clients, send, options.duration, FIXED_RATE, 1));
    const profile = options.profileDir !== undefined && rep === 0;
    if (profile) await server.profileStart();
    const r = await drive(server, clients, send, options.duration, undefined, window);
    if (profile) console.log(`  profile: ${await server.profileStop(options.profileDir!, profileName)}`);
    return { ...r };
  });
  const fixed = Object.fromEntries(
    (Object.keys(LOAD_UNITS) as Array<keyof LoadResult>).map((k) => [
      k,
      figure(
        fixedRuns.map((r) => r[k]),
        LOAD_UNITS[k],
      ),
    ]),
  ) as Record<keyof LoadResult, Figure>;
  return { fixed, saturated };
}

export async function scenarioDevices(
  options: DevicesOptions,
  report: Report,
): Promise<Record<string, unknown>> {
  const results: Record<string, unknown> = {};
  for (const k of options.devices) {
    const n = k.toLocaleString("en-US");
    const ids = Array.from({ length: k }, (_, i) => deviceId("load", i));
    const window = Math.max(1, Math.round(IN_FLIGHT / k));

    // The hub.
    const { hub, remove } = await startHubInTemp("bench-s2-");
    let hubResult: Awaited<ReturnType<typeof measure>>;
    let connectRate: number;
    try {
      await registerSasDevices(hub.info, ids, KEY);
      const target = { port: hub.info.port, caPem: hub.info.caPem, hostName: hub.info.hostName, key: KEY };
      const connected = await connectMany(target, ids);
      connectRate = connected.perSecond;
      try {
        await Promise.all(connected.clients.map((c) => subscribe(c, "$iothub/twin/res/#")));
        hubResult = await measure(hub, k, hubSender(connected.clients), options, window, `hub-patches-K${k}`);
      } finally {
        await closeAll(connected.clients);
      }
    } finally {
      await remove();
    }

    // The bare broker, same clients and the same in-flight window.
    const broker = await startServer("broker");
    let brokerResult: Awaited<ReturnType<typeof measure>>;
    try {
      const connected = await connectMany({ port: broker.info.port, caPem: broker.info.caPem }, ids);
      try {
        brokerResult = await measure(
          broker,
          k,
          brokerSender(connected.clients, ids),
          options,
          window,
          `broker-publishes-K${k}`,
        );
      } finally {
        await closeAll(connected.clients);
      }
    } finally {
      await broker.stop();
    }

    const hubRate = hubResult.saturated.ackedPerSecond;
    const ceiling = brokerResult.saturated.ackedPerSecond;
    const fraction = figure(
      hubRate.runs.map((r, i) => r / (ceiling.runs[i] ?? ceiling.median)),
      "%",
    );
    const big = k >= 1000;
    report.add(S, `K=${n}: connects/s (TLS + MQTT + SAS)`, figure([connectRate], "/s"));
    report.add(
      S,
      `K=${n}: hub acked patches/s at saturation`,
      hubRate,
      big ? { atLeast: 5000, text: ">= 5,000/s" } : undefined,
    );
    report.add(S, `K=${n}: hub ack p50 at saturation`, hubResult.saturated.p50);
    report.add(S, `K=${n}: hub ack p99 at saturation`, hubResult.saturated.p99);
    report.add(S, `K=${n}: hub ack p50 at 1,000/s offered`, hubResult.fixed.p50);
    report.add(
      S,
      `K=${n}: hub ack p99 at 1,000/s offered`,
      hubResult.fixed.p99,
      big ? { atMost: 50, text: "< 50 ms" } : undefined,
    );
    report.add(S, `K=${n}: hub CPU per patch at saturation`, hubResult.saturated.serverCpuPerMessage);
    report.add(S, `K=${n}: bare broker QoS 1 acks/s (ceiling)`, ceiling);
    report.add(S, `K=${n}: bare broker CPU per publish`, brokerResult.saturated.serverCpuPerMessage);
    report.add(S, `K=${n}: bare broker p99 at 1,000/s offered`, brokerResult.fixed.p99);
    report.add(S, `K=${n}: hub rate / ceiling`, fraction, big ? { atLeast: 0.5, text: ">= 50%" } : undefined);
    const errors = hubResult.saturated.errors.median + hubResult.fixed.errors.median;
    if (errors > 0)
      report.note(`scenario 2, K=${n}: the hub answered ${errors} patches with an error status`);
    results[String(k)] = {
      window,
      connectRate,
      hub: hubResult,
      broker: brokerResult,
      fraction,
    };
    console.log(
      `  K=${n}: hub ${Math.round(hubRate.median)}/s (hub cpu ${(hubResult.saturated.serverCpu.median * 100).toFixed(0)}%, ` +
        `generator cpu ${(hubResult.saturated.generatorCpu.median * 100).toFixed(0)}%), p99 at 1,000/s ` +
        `${hubResult.fixed.p99.median.toFixed(1)} ms; broker ${Math.round(ceiling.median)}/s ` +
        `(broker cpu ${(brokerResult.saturated.serverCpu.median * 100).toFixed(0)}%, generator cpu ` +
        `${(brokerResult.saturated.generatorCpu.median * 100).toFixed(0)}%)`,
    );
  }
  return results;
}
