/**
 * Scenario 8, MQTT over WebSockets: K devices send reported-property patches to one hub over MQTT/TLS, and K
 * other devices do the same over MQTT over WebSockets (`wss://localhost:<port>/$iothub/websocket`), with the
 * load generator, window and measurement of scenario 2. All sets stay connected and the measurements alternate
 * (the order rotating from one repetition to the next, with a pause between runs), so each ratio compares runs taken
 * moments apart on the same hub: on a shared machine the load changes from one minute to the next.
 *
 * The figure with the target (>= 0.7) is the WebSocket rate over the TLS rate, with a WebSocket client that
 * sends each packet as one WebSocket message, as the TLS socket sends it as one record. mqtt.js's own
 * WebSocket stream (what azure-iot-device-mqtt's MqttWs uses) sends every piece mqtt-packet writes as a
 * frame of its own; it is measured too, as information: its cost is mostly the client's.
 */
import type { MqttClient } from "mqtt";
import { closeAll, connectMany, registerSasDevices, subscribe } from "./clients.js";
import { deviceId } from "./dataset.js";
import type { Report } from "./report.js";
import { type DevicesOptions, hubSender, measure } from "./scenario-devices.js";
import { startHubInTemp } from "./servers.js";
import { type Figure, figure } from "./stats.js";

const S = "8 websockets";
const KEY = Buffer.from("bench-scenario-8-device-key-0001").toString("base64");
/** Requests in flight over all clients at saturation, as scenario 2. */
const IN_FLIGHT = 500;
/** At least this many alternations, whatever --reps says: single runs on a shared machine mean little. */
const MIN_REPS = 5;
const SETTLE_MS = 2000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Mode = "tls" | "batched" | "mqtt.js";
const MODES: Mode[] = ["tls", "batched", "mqtt.js"];
type Measured = Awaited<ReturnType<typeof measure>>;

/** The per-run values of one figure of every measurement of a mode, as one figure. */
function pooled(runs: Measured[], pick: (m: Measured) => Figure): Figure {
  const f = runs.map(pick);
  return figure(
    f.flatMap((x) => x.runs),
    f[0]?.unit ?? "",
  );
}

export async function scenarioWebSockets(
  options: DevicesOptions,
  report: Report,
): Promise<Record<string, unknown>> {
  const results: Record<string, unknown> = {};
  const reps = Math.max(MIN_REPS, options.reps);
  for (const k of options.devices) {
    const n = k.toLocaleString("en-US");
    const idsOf = (mode: Mode) => Array.from({ length: k }, (_, i) => deviceId(`ws-${mode}`, i));
    const window = Math.max(1, Math.round(IN_FLIGHT / k));
    const { hub, remove } = await startHubInTemp("bench-s8-");
    const sets = new Map<Mode, { clients: MqttClient[]; connectRate: number }>();
    try {
      await registerSasDevices(hub.info, MODES.flatMap(idsOf), KEY);
      const target = { port: hub.info.port, caPem: hub.info.caPem, hostName: hub.info.hostName, key: KEY };
      for (const mode of MODES) {
        const websocket = mode === "tls" ? undefined : mode;
        const connected = await connectMany({ ...target, websocket }, idsOf(mode));
        sets.set(mode, { clients: connected.clients, connectRate: connected.perSecond });
        await Promise.all(connected.clients.map((c) => subscribe(c, "$iothub/twin/res/#")));
      }
      const runs = new Map<Mode, Measured[]>(MODES.map((m) => [m, []]));
      for (let rep = 0; rep < reps; rep++) {
        // The order rotates, so each mode follows each other one; a pause lets the previous run's work settle
        // (the hub's group commits, the generator's queues) before the next starts.
        const order = MODES.map((_, i) => MODES[(i + rep) % MODES.length]);
        for (const mode of order) {
          await sleep(SETTLE_MS);
          const { clients } = sets.get(mode)!;
          const name = `hub-patches-${mode.replace(".", "")}-K${k}`;
          const once = await measure(hub, k, hubSender(clients), { ...options, reps: 1 }, window, name);
          runs.get(mode)!.push(once);
        }
      }
      const rate = (mode: Mode) => pooled(runs.get(mode)!, (m) => m.saturated.ackedPerSecond);
      const ratioOf = (mode: Mode) =>
        figure(
          rate(mode).runs.map((r, i) => r / rate("tls").runs[i]),
          "%",
        );
      const cpu = (mode: Mode) => pooled(runs.get(mode)!, (m) => m.saturated.serverCpuPerMessage);
      const p99 = (mode: Mode) => pooled(runs.get(mode)!, (m) => m.fixed.p99);
      const ratio = ratioOf("batched");
      const stockRatio = ratioOf("mqtt.js");
      report.add(S, `K=${n}: connects/s over TLS`, figure([sets.get("tls")!.connectRate], "/s"));
      report.add(S, `K=${n}: connects/s over WebSockets`, figure([sets.get("batched")!.connectRate], "/s"));
      report.add(S, `K=${n}: acked patches/s over TLS at saturation`, rate("tls"));
      report.add(S, `K=${n}: acked patches/s over WebSockets at saturation`, rate("batched"));
      report.add(S, `K=${n}: WebSockets rate / TLS rate`, ratio, { atLeast: 0.7, text: ">= 70%" });
      report.add(S, `K=${n}: hub CPU per patch, TLS`, cpu("tls"));
      report.add(S, `K=${n}: hub CPU per patch, WebSockets`, cpu("batched"));
      // The hub's own cost, which other load on the machine moves much less than rates: TLS CPU per patch over
      // WebSocket CPU per patch, run by run (1 = WebSockets cost the hub nothing more).
      const capacity = figure(
        cpu("batched").runs.map((c, i) => cpu("tls").runs[i] / c),
        "%",
      );
      report.add(S, `K=${n}: hub capacity over WebSockets / over TLS (CPU per patch)`, capacity);
      report.add(S, `K=${n}: ack p99 at 1,000/s offered, TLS`, p99("tls"));
      report.add(S, `K=${n}: ack p99 at 1,000/s offered, WebSockets`, p99("batched"));
      report.add(S, `K=${n}: mqtt.js's WebSocket stream: acked patches/s`, rate("mqtt.js"));
      report.add(S, `K=${n}: mqtt.js's WebSocket stream: rate / TLS rate`, stockRatio);
      report.add(S, `K=${n}: mqtt.js's WebSocket stream: hub CPU per patch`, cpu("mqtt.js"));
      let errors = 0;
      for (const list of runs.values())
        for (const m of list) errors += m.saturated.errors.median + m.fixed.errors.median;
      if (errors > 0)
        report.note(`scenario 8, K=${n}: the hub answered ${errors} patches with an error status`);
      results[String(k)] = {
        window,
        reps,
        connectRates: Object.fromEntries([...sets].map(([mode, s]) => [mode, s.connectRate])),
        runs: Object.fromEntries(runs),
        ratio,
        capacity,
        mqttjsRatio: stockRatio,
      };
      const pct = (f: Figure) =>
        `${(f.median * 100).toFixed(0)}% (${(f.min * 100).toFixed(0)}-${(f.max * 100).toFixed(0)})`;
      console.log(
        `  K=${n}: TLS ${Math.round(rate("tls").median)}/s, WebSockets ${Math.round(rate("batched").median)}/s, ` +
          `ratio ${pct(ratio)}, capacity ratio ${pct(capacity)}; hub CPU per patch TLS ${cpu("tls").median.toFixed(0)} us, WebSockets ` +
          `${cpu("batched").median.toFixed(0)} us; mqtt.js's WebSocket stream ${Math.round(rate("mqtt.js").median)}/s, ` +
          `ratio ${pct(stockRatio)}, hub CPU per patch ${cpu("mqtt.js").median.toFixed(0)} us`,
      );
    } finally {
      for (const s of sets.values()) await closeAll(s.clients);
      await remove();
    }
  }
  return results;
}
