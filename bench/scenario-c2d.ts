/**
 * Scenario 9, cloud-to-device messages: K devices connected over MQTT/TLS, each subscribed to its
 * `devices/{id}/messages/devicebound/#` topic; the unmodified azure-iothub service Client (its own process)
 * sends messages round-robin over the devices with `WINDOW` sends awaiting the hub's "accepted" (stored in the
 * device's durable queue). Measured: messages/s delivered to the devices and PUBACK'd (mqtt.js acknowledges each
 * as it handles it, which completes the message in the hub's queue), messages/s accepted by the hub, and the
 * latency from send to receipt (p50/p99).
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { closeAll, connectMany, registerSasDevices } from "./clients.js";
import { deviceId } from "./dataset.js";
import type { Report } from "./report.js";
import { startHubInTemp } from "./servers.js";
import { figure, percentile } from "./stats.js";

const S = "9 cloud-to-device";
const KEY = Buffer.from("bench-scenario-9-device-key-0001").toString("base64");
/** Sends awaiting "accepted" at once (well under 50 per device, IoT Hub's queue depth, for K >= 100). */
const WINDOW = 200;
/** Messages per device per run, and at least MIN_MESSAGES per run (a shorter run measures its own ramp). */
const PER_DEVICE = 20;
const MIN_MESSAGES = 10_000;
const SENDER = fileURLToPath(new URL("./c2d-sender-process.js", import.meta.url));

export interface C2dOptions {
  devices: number[];
  reps: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const nowMs = () => performance.timeOrigin + performance.now();

function next<T>(child: ChildProcess, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Record<string, unknown>) => {
      if (key in m) {
        child.off("message", onMessage);
        resolve(m[key] as T);
      }
    };
    child.on("message", onMessage);
    child.once("exit", (code) => reject(new Error(`the sender exited (${code}) before ${key}`)));
  });
}

export async function scenarioC2d(options: C2dOptions, report: Report): Promise<Record<string, unknown>> {
  const results: Record<string, unknown> = {};
  for (const k of options.devices) {
    const n = k.toLocaleString("en-US");
    const ids = Array.from({ length: k }, (_, i) => deviceId("c2d", i));
    const runs: Array<{
      deliveredPerSecond: number;
      acceptedPerSecond: number;
      p50: number;
      p99: number;
      lost: number;
    }> = [];
    const { hub, remove } = await startHubInTemp("bench-s9-");
    try {
      await registerSasDevices(hub.info, ids, KEY);
      const target = { port: hub.info.port, caPem: hub.info.caPem, hostName: hub.info.hostName, key: KEY };
      const connected = await connectMany(target, ids);
      let run = 0;
      let latencies: number[] = [];
      let lastReceipt = 0;
      for (const client of connected.clients) {
        client.on("message", (_topic, payload) => {
          const at = nowMs();
          const body = JSON.parse(payload.toString()) as { t: number; m: number };
          if (body.m !== run) return;
          latencies.push(at - body.t);
          lastReceipt = performance.now();
        });
      }
      await Promise.all(
        connected.clients.map(
          (c, i) =>
            new Promise<void>((resolve, reject) =>
              c.subscribe(`devices/${ids[i]}/messages/devicebound/#`, { qos: 1 }, (error) =>
                error ? reject(error) : resolve(),
              ),
            ),
        ),
      );
      const sender = fork(SENDER, [hub.info.serviceConnectionString!], {
        env: { ...process.env, NODE_EXTRA_CA_CERTS: hub.info.caFile },
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      try {
        await next(sender, "ready");
        // A warm-up run (links attached, code paths hot), then the measured ones.
        for (let rep = -1; rep < options.reps; rep++) {
          run = rep + 2;
          latencies = [];
          const count = rep < 0 ? k * 2 : Math.max(k * PER_DEVICE, MIN_MESSAGES);
          const started = performance.now();
          sender.send({ cmd: "send", deviceIds: ids, count, window: WINDOW, run });
          const sent = await next<{ accepted: number; refused: number; seconds: number }>(sender, "sent");
          const until = performance.now() + 30_000;
          while (latencies.length < sent.accepted && performance.now() < until) await sleep(20);
          if (rep < 0) continue;
          const seconds = (lastReceipt - started) / 1000;
          const sorted = [...latencies].sort((a, b) => a - b);
          runs.push({
            deliveredPerSecond: latencies.length / seconds,
            acceptedPerSecond: sent.accepted / sent.seconds,
            p50: percentile(sorted, 50),
            p99: percentile(sorted, 99),
            lost: count - latencies.length,
          });
          if (sent.refused > 0) report.note(`scenario 9, K=${n}: ${sent.refused} sends refused`);
        }
      } finally {
        sender.send({ cmd: "stop" });
        await new Promise((r) => (sender.exitCode !== null ? r(null) : sender.once("exit", r)));
        await closeAll(connected.clients);
      }
    } finally {
      await remove();
    }
    const delivered = figure(
      runs.map((r) => r.deliveredPerSecond),
      "/s",
    );
    report.add(S, `K=${n}: messages delivered and PUBACK'd/s`, delivered);
    report.add(
      S,
      `K=${n}: messages accepted (stored)/s`,
      figure(
        runs.map((r) => r.acceptedPerSecond),
        "/s",
      ),
    );
    report.add(
      S,
      `K=${n}: send to receipt p50`,
      figure(
        runs.map((r) => r.p50),
        "ms",
      ),
    );
    report.add(
      S,
      `K=${n}: send to receipt p99`,
      figure(
        runs.map((r) => r.p99),
        "ms",
      ),
    );
    const lost = runs.reduce((sum, r) => sum + r.lost, 0);
    if (lost > 0) report.note(`scenario 9, K=${n}: ${lost} messages did not reach their device within 30 s`);
    results[String(k)] = { window: WINDOW, messages: Math.max(k * PER_DEVICE, MIN_MESSAGES), runs };
    console.log(
      `  K=${n}: delivered ${Math.round(delivered.median)}/s, accepted ${Math.round(runs[0]?.acceptedPerSecond ?? 0)}/s, ` +
        `send to receipt p50 ${runs[0]?.p50.toFixed(1)} ms p99 ${runs[0]?.p99.toFixed(1)} ms`,
    );
  }
  return results;
}
