/**
 * Scenario 7, direct methods: the round trip a back end sees, service REST → hub → device over MQTT → the
 * device's answer → the REST answer. K devices (mqtt.js over TLS, as in scenario 2) subscribe to
 * `$iothub/methods/POST/#` and answer every request at once with its payload; the back end is raw HTTPS with
 * keep-alive (`POST /twins/{id}/methods`, a service SAS token made once), spread round-robin over the devices.
 * Measured open-loop at a fixed offered rate (p50/p99 latency) and closed-loop at saturation (round trips/s).
 * The hub runs in its own process; devices and back end share this one.
 */
import { Agent, request } from "node:https";
import type { MqttClient } from "mqtt";
import { DEV_POLICIES } from "../src/hub/auth/credentials.js";
import { makeToken } from "../src/hub/auth/sas.js";
import { closeAll, connectMany, registerSasDevices, subscribe } from "./clients.js";
import { deviceId } from "./dataset.js";
import type { Report } from "./report.js";
import { drive as driveLoad, type Sender } from "./scenario-devices.js";
import { type Server, startHubInTemp } from "./servers.js";
import { type Figure, figure, repeat } from "./stats.js";

const S = "7 methods";
const KEY = Buffer.from("bench-scenario-7-device-key-0001").toString("base64");
/** Back-end connections (keep-alive); at saturation each keeps one call in flight. */
const SOCKETS = 64;

export interface MethodsOptions {
  devices: number;
  rate: number;
  duration: number;
  reps: number;
  profileDir?: string;
}

interface LoadResult {
  perSecond: number;
  p50: number;
  p99: number;
  errors: number;
  serverCpu: number;
  serverCpuPerCall: number;
}

const UNITS = {
  perSecond: "/s",
  p50: "ms",
  p99: "ms",
  errors: "",
  serverCpu: "%",
  serverCpuPerCall: "us",
} as const;

/** Devices answer every method request at once: status 200, the request's payload as the answer. */
function answerEverything(clients: MqttClient[]): void {
  for (const client of clients) {
    client.on("message", (topic: string, payload: Buffer) => {
      const at = topic.indexOf("?$rid=");
      if (!topic.startsWith("$iothub/methods/POST/") || at < 0) return;
      client.publish(`$iothub/methods/res/200/?$rid=${topic.slice(at + 6)}`, payload, { qos: 0 });
    });
  }
}

/** One invocation; resolves with true when the hub answered 200 with the device's echo. */
function invoke(agent: Agent, server: Server, token: string, id: string, seq: number): Promise<boolean> {
  const body = `{"methodName":"echo","responseTimeoutInSeconds":30,"payload":{"seq":${seq}}}`;
  return new Promise((resolve) => {
    const req = request(
      {
        agent,
        host: "127.0.0.1",
        servername: "localhost",
        port: server.info.port,
        method: "POST",
        path: `/twins/${encodeURIComponent(id)}/methods?api-version=2021-04-12`,
        headers: {
          authorization: token,
          "content-type": "application/json; charset=utf-8",
          "content-length": Buffer.byteLength(body),
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => resolve(res.statusCode === 200 && text.includes(`"seq":${seq}}`)));
        res.on("error", () => resolve(false));
      },
    );
    req.on("error", () => resolve(false));
    req.end(body);
  });
}

/**
 * Calls spread round-robin over the devices, open-loop at `rate` calls/s or closed-loop with SOCKETS calls in
 * flight, through scenario 2's load driver: only calls sent after the warm-up and answered before the end count.
 */
async function drive(
  server: Server,
  agent: Agent,
  token: string,
  ids: string[],
  duration: number,
  rate: number | undefined,
): Promise<LoadResult> {
  let seq = 0;
  let next = 0;
  const send: Sender = (_client, ack) => {
    const id = ids[next];
    next = (next + 1) % ids.length;
    void invoke(agent, server, token, id, ++seq).then(ack);
  };
  // A call waits up to its 30 s response timeout, so what is in flight at the end gets as long to finish.
  const r = await driveLoad(server, 1, send, duration, rate, SOCKETS, 30_000);
  return {
    perSecond: r.ackedPerSecond,
    p50: r.p50,
    p99: r.p99,
    errors: r.errors,
    serverCpu: r.serverCpu,
    serverCpuPerCall: r.serverCpuPerMessage,
  };
}

export async function scenarioMethods(
  options: MethodsOptions,
  report: Report,
): Promise<Record<string, unknown>> {
  const k = options.devices;
  const ids = Array.from({ length: k }, (_, i) => deviceId("method", i));
  const { hub, remove } = await startHubInTemp("bench-s7-");
  try {
    await registerSasDevices(hub.info, ids, KEY);
    const target = { port: hub.info.port, caPem: hub.info.caPem, hostName: hub.info.hostName, key: KEY };
    const connected = await connectMany(target, ids);
    const agent = new Agent({ keepAlive: true, maxSockets: SOCKETS, ca: hub.info.caPem });
    try {
      await Promise.all(connected.clients.map((c) => subscribe(c, "$iothub/methods/POST/#")));
      answerEverything(connected.clients);
      const service = DEV_POLICIES.find((p) => p.name === "service")!;
      const token = makeToken(
        service.primaryKey,
        hub.info.hostName,
        Math.floor(Date.now() / 1000) + 3600,
        "service",
      );
      // Warm up once, unmeasured, at saturation: opens the back end's connections (64 TLS handshakes at once,
      // which a cold open-loop run would otherwise queue its first requests behind) and warms the hub's code.
      await drive(hub, agent, token, ids, 2, undefined);
      const fixedRuns: LoadResult[] = [];
      const saturated = await repeat(options.reps, UNITS, async (rep) => {
        // Fixed load and saturation alternate so both see the same machine noise.
        const profile = options.profileDir !== undefined && rep === 0;
        if (profile) await hub.profileStart();
        fixedRuns.push(await drive(hub, agent, token, ids, options.duration, options.rate));
        if (profile)
          console.log(
            `  profile: ${await hub.profileStop(options.profileDir!, `hub-methods-${options.rate}`)}`,
          );
        if (profile) await hub.profileStart();
        const r = await drive(hub, agent, token, ids, options.duration, undefined);
        if (profile)
          console.log(`  profile: ${await hub.profileStop(options.profileDir!, "hub-methods-saturated")}`);
        return { ...r };
      });
      const fixed = Object.fromEntries(
        (Object.keys(UNITS) as Array<keyof LoadResult>).map((key) => [
          key,
          figure(
            fixedRuns.map((r) => r[key]),
            UNITS[key],
          ),
        ]),
      ) as Record<keyof LoadResult, Figure>;
      const n = k.toLocaleString("en-US");
      const r = options.rate.toLocaleString("en-US");
      report.add(S, `K=${n}: round trips/s at saturation (${SOCKETS} in flight)`, saturated.perSecond);
      report.add(S, `K=${n}: p50 at saturation`, saturated.p50);
      report.add(S, `K=${n}: p99 at saturation`, saturated.p99);
      report.add(S, `K=${n}: round trips/s at ${r}/s offered`, fixed.perSecond);
      report.add(S, `K=${n}: p50 at ${r}/s offered`, fixed.p50);
      report.add(S, `K=${n}: p99 at ${r}/s offered`, fixed.p99, { atMost: 10, text: "< 10 ms" });
      report.add(S, `K=${n}: hub CPU per call at saturation`, saturated.serverCpuPerCall);
      const errors = saturated.errors.median + fixed.errors.median;
      if (errors > 0) report.note(`scenario 7: ${errors} calls did not come back 200 with their own echo`);
      console.log(
        `  K=${n}: ${Math.round(saturated.perSecond.median)} round trips/s at saturation (hub cpu ` +
          `${(saturated.serverCpu.median * 100).toFixed(0)}%), p99 ${saturated.p99.median.toFixed(1)} ms; at ${r}/s ` +
          `offered p50 ${fixed.p50.median.toFixed(2)} ms, p99 ${fixed.p99.median.toFixed(2)} ms`,
      );
      return { devices: k, rate: options.rate, sockets: SOCKETS, fixed, saturated };
    } finally {
      agent.destroy();
      await closeAll(connected.clients);
    }
  } finally {
    await remove();
  }
}
