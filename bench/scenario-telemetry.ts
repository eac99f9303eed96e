/**
 * Scenario 6, device-to-cloud telemetry end to end: K devices connected over MQTT/TLS publish QoS 1
 * telemetry (`devices/{id}/messages/events/`), the hub stores each message before its PUBACK, and one
 * unmodified @azure/event-hubs consumer (its own process) reads every partition of the Event Hubs-compatible
 * endpoint over AMQP. Measured at saturation (a closed loop of QoS 1 publishes, `IN_FLIGHT` in flight) and
 * at a fixed offered rate: messages/s delivered to the consumer, and the end-to-end latency from publish to
 * receipt (p50/p99). The ceiling is the same clients' QoS 1 publishes to a bare aedes broker in the same run.
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { MqttClient } from "mqtt";
import { closeAll, connectMany, registerSasDevices } from "./clients.js";
import { deviceId } from "./dataset.js";
import type { Report } from "./report.js";
import { startHubInTemp, startServer } from "./servers.js";
import { figure, percentile } from "./stats.js";

const S = "6 telemetry";
const KEY = Buffer.from("bench-scenario-5-device-key-0001").toString("base64");
const IN_FLIGHT = 500;
/**
 * The offered rate of the latency target (p99 under 50 ms at 1,000 messages/s). Below the saturation rate on a
 * small machine, so the latency is the path's, not a queue's. The consumer SDK reads its queue every 20 ms
 * (@azure/event-hubs, partitionReceiver's read interval), so about 20 ms of any end-to-end figure is the reader's,
 * on Azure as here.
 */
const FIXED_RATE = 1000;
/** The targets are stated for 1,000 devices. */
const TARGET_DEVICES = 1000;
let runNumber = 0;
const WARMUP_S = 1;
const CONSUMER = fileURLToPath(new URL("./consumer-process.js", import.meta.url));

export interface TelemetryOptions {
  devices: number[];
  duration: number;
  reps: number;
  /** Write a CPU profile of the hub during the first saturation run. */
  profileDir?: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const nowMs = () => performance.timeOrigin + performance.now();

function ask<T>(
  child: ChildProcess,
  cmd: string,
  key: string,
  extra: Record<string, unknown> = {},
): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Record<string, unknown>) => {
      if (key in m) {
        child.off("message", onMessage);
        resolve(m[key] as T);
      } else if (m.error) {
        child.off("message", onMessage);
        reject(new Error(String(m.error)));
      }
    };
    child.on("message", onMessage);
    if (cmd) child.send({ cmd, ...extra });
  });
}

/** Publishes for warm-up + `duration` s; returns PUBACKed/s and the consumer's view of the measured ones. */
async function drive(
  clients: MqttClient[],
  ids: string[],
  consumer: ChildProcess | undefined,
  duration: number,
  rate: number | undefined,
  window: number,
) {
  let measuring = false;
  const run = ++runNumber;
  let running = true;
  let acked = 0;
  let sentMeasured = 0;
  let outstanding = 0;
  const one = (c: number) => {
    const m = measuring ? run : 0;
    if (m) sentMeasured++;
    outstanding++;
    const payload = `{"t":${nowMs()},"m":${m}}`;
    clients[c].publish(`devices/${ids[c]}/messages/events/`, payload, { qos: 1 }, (error) => {
      outstanding--;
      // Every message published while measuring counts once acknowledged, also after the window closed.
      if (!error && m) acked++;
      if (rate === undefined && running) one(c);
    });
  };
  let timer: NodeJS.Timeout | undefined;
  const start = performance.now();
  if (rate === undefined) {
    for (let c = 0; c < clients.length; c++) for (let w = 0; w < window; w++) one(c);
  } else {
    let sent = 0;
    let next = 0;
    timer = setInterval(() => {
      const due = Math.floor(((performance.now() - start) / 1000) * rate);
      for (; sent < due; sent++) {
        one(next);
        next = (next + 1) % clients.length;
      }
    }, 1);
  }
  await sleep(WARMUP_S * 1000);
  if (consumer) await ask(consumer, "reset", "reset", { run });
  measuring = true;
  const t0 = performance.now();
  await sleep(duration * 1000);
  measuring = false;
  const seconds = (performance.now() - t0) / 1000;
  running = false;
  if (timer) clearInterval(timer);
  const drainUntil = performance.now() + 15_000;
  while (outstanding > 0 && performance.now() < drainUntil) await sleep(20);
  if (!consumer)
    return {
      ackedPerSecond: acked / seconds,
      deliveredPerSecond: Number.NaN,
      p50: Number.NaN,
      p99: Number.NaN,
      lost: 0,
    };
  // Let the consumer catch up with what was published while measuring.
  let report = await ask<{ latencies: number[] }>(consumer, "report", "report");
  const until = performance.now() + 30_000;
  while (report.latencies.length < sentMeasured && performance.now() < until) {
    await sleep(100);
    report = await ask<{ latencies: number[] }>(consumer, "report", "report");
  }
  const sorted = [...report.latencies].sort((a, b) => a - b);
  return {
    ackedPerSecond: acked / seconds,
    // Delivery rate: the messages published while measuring that reached the consumer, over the measuring
    // time (a consumer that lags shows in the latency figures).
    deliveredPerSecond: sorted.length / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    lost: Math.max(0, sentMeasured - sorted.length),
  };
}

export async function scenarioTelemetry(
  options: TelemetryOptions,
  report: Report,
): Promise<Record<string, unknown>> {
  const results: Record<string, unknown> = {};
  for (const k of options.devices) {
    const n = k.toLocaleString("en-US");
    const ids = Array.from({ length: k }, (_, i) => deviceId("d2c", i));
    const window = Math.max(1, Math.round(IN_FLIGHT / k));
    const hubRuns: Array<Awaited<ReturnType<typeof drive>>> = [];
    const fixedRuns: Array<Awaited<ReturnType<typeof drive>>> = [];
    const { hub, remove } = await startHubInTemp("bench-s5-");
    try {
      await registerSasDevices(hub.info, ids, KEY);
      const consumer = fork(CONSUMER, [hub.info.eventHubConnectionString!], {
        env: { ...process.env, NODE_EXTRA_CA_CERTS: hub.info.caFile },
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      try {
        await ask(consumer, "", "ready");
        const target = { port: hub.info.port, caPem: hub.info.caPem, hostName: hub.info.hostName, key: KEY };
        const connected = await connectMany(target, ids);
        try {
          for (let rep = 0; rep < options.reps; rep++) {
            fixedRuns.push(await drive(connected.clients, ids, consumer, options.duration, FIXED_RATE, 1));
            const profile = options.profileDir !== undefined && rep === 0;
            if (profile) await hub.profileStart();
            hubRuns.push(await drive(connected.clients, ids, consumer, options.duration, undefined, window));
            if (profile)
              console.log(`  profile: ${await hub.profileStop(options.profileDir!, `hub-telemetry-K${k}`)}`);
          }
        } finally {
          await closeAll(connected.clients);
        }
      } finally {
        consumer.send({ cmd: "stop" });
        await new Promise((r) => (consumer.exitCode !== null ? r(null) : consumer.once("exit", r)));
      }
    } finally {
      await remove();
    }

    // The ceiling: the same clients' QoS 1 publishes to a bare broker, same window.
    const brokerRuns: Array<Awaited<ReturnType<typeof drive>>> = [];
    const broker = await startServer("broker");
    try {
      const connected = await connectMany({ port: broker.info.port, caPem: broker.info.caPem }, ids);
      try {
        for (let rep = 0; rep < options.reps; rep++)
          brokerRuns.push(
            await drive(connected.clients, ids, undefined, options.duration, undefined, window),
          );
      } finally {
        await closeAll(connected.clients);
      }
    } finally {
      await broker.stop();
    }

    const delivered = figure(
      hubRuns.map((r) => r.deliveredPerSecond),
      "/s",
    );
    const ceiling = figure(
      brokerRuns.map((r) => r.ackedPerSecond),
      "/s",
    );
    const ratio = figure(
      hubRuns.map((r, i) => r.deliveredPerSecond / (brokerRuns[i]?.ackedPerSecond ?? ceiling.median)),
      "%",
    );
    const targeted = k === TARGET_DEVICES;
    report.add(
      S,
      `K=${n}: telemetry delivered to an Event Hubs consumer/s at saturation`,
      delivered,
      targeted ? { atLeast: 5000, text: ">= 5,000/s" } : undefined,
    );
    report.add(
      S,
      `K=${n}: telemetry PUBACKed (stored)/s at saturation`,
      figure(
        hubRuns.map((r) => r.ackedPerSecond),
        "/s",
      ),
    );
    report.add(
      S,
      `K=${n}: end-to-end p50 at saturation`,
      figure(
        hubRuns.map((r) => r.p50),
        "ms",
      ),
    );
    report.add(
      S,
      `K=${n}: end-to-end p99 at saturation`,
      figure(
        hubRuns.map((r) => r.p99),
        "ms",
      ),
    );
    report.add(
      S,
      `K=${n}: end-to-end p50 at ${FIXED_RATE.toLocaleString("en-US")}/s offered`,
      figure(
        fixedRuns.map((r) => r.p50),
        "ms",
      ),
    );
    report.add(
      S,
      `K=${n}: end-to-end p99 at ${FIXED_RATE.toLocaleString("en-US")}/s offered`,
      figure(
        fixedRuns.map((r) => r.p99),
        "ms",
      ),
      targeted ? { atMost: 50, text: "< 50 ms" } : undefined,
    );
    report.add(S, `K=${n}: bare broker QoS 1 acks/s (ceiling)`, ceiling);
    report.add(S, `K=${n}: delivered / ceiling`, ratio);
    const lost = [...hubRuns, ...fixedRuns].reduce((sum, r) => sum + r.lost, 0);
    if (lost > 0)
      report.note(`scenario 6, K=${n}: ${lost} measured messages did not reach the consumer within 30 s`);
    results[String(k)] = { window, hub: hubRuns, fixed: fixedRuns, broker: brokerRuns, ratio };
    console.log(
      `  K=${n}: delivered ${Math.round(delivered.median)}/s (ceiling ${Math.round(ceiling.median)}/s, ` +
        `${(ratio.median * 100).toFixed(0)}%), e2e p50 ${hubRuns[0]?.p50.toFixed(1)} ms p99 ${hubRuns[0]?.p99.toFixed(1)} ms at saturation; ` +
        `at ${FIXED_RATE}/s p50 ${fixedRuns[0]?.p50.toFixed(1)} ms p99 ${fixedRuns[0]?.p99.toFixed(1)} ms`,
    );
  }
  return results;
}
