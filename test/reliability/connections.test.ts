import { request } from "node:https";
import { type Socket, connect as tcpConnect } from "node:net";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import type { Client as DeviceClient } from "azure-iot-device";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { HostPortAgent } from "../../src/sdk/index.js";
import {
  connectDevice,
  eventually,
  getDeviceTwin,
  registryFor,
  reportProperties,
  startTestHub,
} from "../hub/support.js";
import { deviceToken, mqttLogin, serviceToken, sleep } from "./support.js";

/**
 * Connection hygiene on the one TLS port (src/hub/connection-limits.ts): connections that never become an
 * MQTT session or an HTTP request are closed after the pending deadline; caps refuse the excess with a log
 * line; slow request heads and bodies are cut off; kept-alive connections outlast the SDK agent's idle time;
 * a client that pipelines requests and never reads the answers does not make the hub buffer them. The limits
 * are made short through startHub's `limits` so the suites run fast; the defaults are realistic.
 */

type Hub = Awaited<ReturnType<typeof startTestHub>>;

const opened: Array<Socket | TLSSocket> = [];
afterEach(() => {
  for (const s of opened.splice(0)) s.destroy();
});

function track<T extends Socket | TLSSocket>(s: T): T {
  opened.push(s);
  s.on("error", () => {});
  return s;
}

const closedPromise = (s: Socket | TLSSocket) =>
  new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once("close", () => resolve())));

function tcp(hub: Hub): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = track(tcpConnect(hub.port, "127.0.0.1"));
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

function tls(hub: Hub): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = track(
      tlsConnect({ port: hub.port, host: "127.0.0.1", servername: "localhost", ca: hub.caPem }),
    );
    s.once("secureConnect", () => resolve(s));
    s.once("error", reject);
  });
}

function getTwinRequest(hub: Hub, deviceId = "myDeviceId"): string {
  return [
    `GET /twins/${deviceId}?api-version=2021-04-12 HTTP/1.1`,
    `Host: ${hub.hostName}`,
    `Authorization: ${serviceToken(hub)}`,
    "",
    "",
  ].join("\r\n");
}

/** Reads one HTTP/1.1 response head from a raw socket. */
function firstResponseLine(s: TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    s.on("data", (d: Buffer) => {
      text += d.toString("latin1");
      if (text.includes("\r\n")) resolve(text.split("\r\n")[0]);
    });
    s.once("close", () => resolve(text.split("\r\n")[0]));
  });
}

/** The tutorial device's primary key, from the hub's own device connection string. */
const primaryKeyOf = (hub: Hub) => /SharedAccessKey=([^;]+)/.exec(hub.deviceConnectionString())?.[1] ?? "";

describe("connections that never become a session or a request", () => {
  let hub: Hub;
  const lines: string[] = [];
  beforeAll(async () => {
    hub = await startTestHub({
      inMemory: true,
      quiet: false,
      log: (l) => lines.push(l),
      limits: { pendingTimeoutMs: 400, headersTimeoutMs: 400, requestTimeoutMs: 800 },
    });
    // The front ends load once (frontends.ts); on a busy machine that alone could outlast 0.4 s.
    const warm = await tls(hub);
    const answered = firstResponseLine(warm);
    warm.write(getTwinRequest(hub));
    await answered;
    warm.destroy();
  });
  afterAll(() => hub.cleanup());

  it("closes idle, one-byte, silent-TLS and half-sent MQTT/HTTP connections after the pending deadline", async () => {
    const idle = await tcp(hub);
    const oneByte = await tcp(hub);
    oneByte.write(Buffer.from([0x16]));
    const silentTls = await tls(hub);
    const oneHttpByte = await tls(hub);
    oneHttpByte.write("G");
    const halfHead = await tls(hub);
    halfHead.write("GET /twins/myDeviceId HTTP/1.1\r\nHost: x\r\n");
    // An MQTT CONNECT cut short: fixed header says 40 bytes follow, 3 arrive (MQTT 3.1.1 section 3.1.4).
    const halfConnect = await tls(hub);
    halfConnect.write(Buffer.from([0x10, 40, 0x00, 0x04, 0x4d]));
    const all = [idle, oneByte, silentTls, oneHttpByte, halfHead, halfConnect];
    const started = Date.now();
    // Generous: the deadline is 0.4 s; without one these stay open for ever.
    await Promise.race([
      Promise.all(all.map(closedPromise)),
      sleep(15_000).then(() => {
        throw new Error(`still open: ${all.map((s) => !s.destroyed).join(",")}`);
      }),
    ]);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(
      lines.some((l) => /did not complete a TLS handshake and an MQTT CONNECT or HTTP request/.test(l)),
    ).toBe(true);
  });

  it("keeps connections that became an MQTT session or an HTTP client past the pending deadline", async () => {
    const device = await mqttLogin(hub, "myDeviceId", deviceToken(hub, "myDeviceId", primaryKeyOf(hub)), {
      keepalive: 60,
    });
    if (!device.ok) throw new Error(`device refused: ${device.reason}`);
    let deviceClosed = false;
    device.client.once("close", () => (deviceClosed = true));
    const http = await tls(hub);
    const answered = firstResponseLine(http);
    http.write(getTwinRequest(hub));
    expect(await answered).toBe("HTTP/1.1 200 OK");
    await sleep(1_500); // well past the 0.4 s pending deadline
    expect(deviceClosed).toBe(false);
    expect(http.destroyed).toBe(false);
    const again = new Promise<string>((resolve) =>
      http.once("data", (d: Buffer) => resolve(d.toString("latin1"))),
    );
    http.write(getTwinRequest(hub));
    expect((await again).split("\r\n")[0]).toBe("HTTP/1.1 200 OK");
    device.client.end(true);
  });

  it("answers 408 and closes when a later request head or a body trickles in too slowly", async () => {
    // A first complete request makes the connection an HTTP client; the next head then trickles.
    const s = await tls(hub);
    const first = firstResponseLine(s);
    s.write(getTwinRequest(hub));
    expect(await first).toBe("HTTP/1.1 200 OK");
    s.removeAllListeners("data");
    const trickle = setInterval(() => s.writable && s.write("X"), 100);
    const head = await new Promise<string>((resolve) => {
      let text = "";
      s.on("data", (d: Buffer) => (text += d.toString("latin1")));
      s.once("close", () => resolve(text));
      s.write("GET /twins/myDeviceId HTTP/1.1\r\nX-Slow: ");
    });
    clearInterval(trickle);
    expect(head.split("\r\n")[0]).toBe("HTTP/1.1 408 Request Timeout");

    // A body that trickles: the head is complete, the body promises 1000 bytes, 1 comes per 100 ms.
    const b = await tls(hub);
    const line = firstResponseLine(b);
    b.write(
      [
        "PATCH /twins/myDeviceId?api-version=2021-04-12 HTTP/1.1",
        `Host: ${hub.hostName}`,
        `Authorization: ${serviceToken(hub)}`,
        "Content-Type: application/json",
        "Content-Length: 1000",
        "",
        "{",
      ].join("\r\n"),
    );
    const bodyTrickle = setInterval(() => b.writable && b.write(" "), 100);
    const status = await line;
    await closedPromise(b);
    clearInterval(bodyTrickle);
    expect(status).toBe("HTTP/1.1 408 Request Timeout");
  });
});

describe("connection caps", () => {
  let hub: Hub;
  const lines: string[] = [];
  let device: DeviceClient;
  beforeAll(async () => {
    hub = await startTestHub({
      inMemory: true,
      quiet: false,
      log: (l) => lines.push(l),
      limits: { maxConnections: 30, maxPendingConnections: 10, pendingTimeoutMs: 60_000 },
    });
    device = await connectDevice(hub.deviceConnectionString(), hub.caPem);
  });
  afterAll(async () => {
    await device?.close();
    await hub.cleanup();
  });

  it("refuses connections beyond the pending cap with a log line while connected clients keep being served", async () => {
    const registry = registryFor(hub.serviceConnectionString, hub.caPem);
    await registry.getTwin("myDeviceId"); // its kept-alive connection is now an HTTP client

    // The attack: more half-open connections than the pending cap, all held open.
    const held = await Promise.all(Array.from({ length: 10 }, () => tcp(hub)));
    const excess = await Promise.all(Array.from({ length: 15 }, () => tcp(hub)));
    await Promise.all(excess.map(closedPromise));
    expect(held.every((s) => !s.destroyed)).toBe(true);
    expect(lines.some((l) => /refused a connection from .*have not completed .*\(limit 10\)/.test(l))).toBe(
      true,
    );

    // The device's MQTT session and the back end's kept-alive HTTPS connection are served during the attack.
    const twin = await getDeviceTwin(device);
    await reportProperties(twin, { duringAttack: true });
    const seen = await registry.getTwin("myDeviceId");
    expect(seen.responseBody.properties.reported.duringAttack).toBe(true);

    // Once the attackers go, new connections are admitted again.
    for (const s of held) s.destroy();
    await eventually(async () => {
      const s = await tls(hub).catch(() => undefined);
      const ok = s !== undefined && !s.destroyed;
      s?.destroy();
      return ok || undefined;
    });
  });

  it("refuses connections beyond the total cap, counting established ones", async () => {
    // Fill the total cap with established HTTP connections (each sent one complete request and stays alive).
    const established: TLSSocket[] = [];
    for (let i = 0; i < 40; i++) {
      const s = await tls(hub).catch(() => undefined);
      if (!s) break;
      const line = firstResponseLine(s);
      s.write(getTwinRequest(hub));
      if ((await line) !== "HTTP/1.1 200 OK") break;
      established.push(s);
    }
    // 30 allowed, two already held by the device's MQTT session and the registry's connection.
    expect(established.length).toBeLessThan(30);
    expect(established.length).toBeGreaterThan(20);
    expect(lines.some((l) => /refused a connection from .*connections are open \(limit 30\)/.test(l))).toBe(
      true,
    );
    // The device is still served.
    const twin = await getDeviceTwin(device);
    expect(twin.properties.reported.duringAttack).toBe(true);
    for (const s of established) s.destroy();
  });
});

describe("kept-alive HTTPS connections", () => {
  let hub: Hub;
  beforeAll(async () => {
    hub = await startTestHub({ inMemory: true });
  });
  afterAll(() => hub.cleanup());

  it("are still good after 7 s idle, longer than Node's 5 s default (the SDK agent reuses them)", async () => {
    // The agent the product gives the SDK (src/sdk): keep-alive, no idle timeout of its own.
    const agent = new HostPortAgent({ ca: hub.caPem });
    const get = () =>
      new Promise<{ status: number; reused: boolean; keepAlive?: string }>((resolve, reject) => {
        const req = request(
          {
            host: "localhost",
            port: hub.port,
            path: "/twins/myDeviceId?api-version=2021-04-12",
            headers: { authorization: serviceToken(hub) },
            agent,
          },
          (res) => {
            res.resume();
            res.on("end", () =>
              resolve({
                status: res.statusCode ?? 0,
                reused: req.reusedSocket,
                keepAlive: String(res.headers["keep-alive"]),
              }),
            );
          },
        );
        req.on("error", reject);
        req.end();
      });
    try {
      const first = await get();
      expect(first).toMatchObject({ status: 200, reused: false });
      // Announced to clients, whose agents then leave before the hub closes (Node's agent honours it).
      expect(first.keepAlive).toBe("timeout=240");
      await sleep(7_000);
      expect(await get()).toMatchObject({ status: 200, reused: true });
      // And through the SDK's Registry with that agent.
      const registry = registryFor(hub.serviceConnectionString, hub.caPem);
      await registry.getTwin("myDeviceId");
      await sleep(7_000);
      expect((await registry.getTwin("myDeviceId")).responseBody.deviceId).toBe("myDeviceId");
    } finally {
      agent.destroy();
    }
  }, 30_000);
});

describe("pipelined requests whose answers are never read", () => {
  let hub: Hub;
  beforeAll(async () => {
    hub = await startTestHub({
      inMemory: true,
      limits: { idleTimeoutMs: 2_000 },
    });
  });
  afterAll(() => hub.cleanup());

  it("stop being read: the hub's memory stays bounded, others are served, the connection is closed", async () => {
    const s = await tls(hub);
    // Never read: pause the socket so nothing is consumed on the client side.
    s.pause();
    const one = Buffer.from(getTwinRequest(hub));
    const batch = Buffer.concat(Array.from({ length: 200 }, () => one));
    global.gc?.();
    const before = process.memoryUsage().rss;
    let sent = 0;
    const total = 60_000; // ~ 60,000 requests: 24 MB of requests, ~ 60 MB of answers if all were answered
    const blocked = new Promise<void>((resolve) => {
      const pump = () => {
        while (sent < total) {
          sent += 200;
          if (!s.write(batch)) {
            // Stuck for 2 s: the hub no longer reads.
            const timer = setTimeout(resolve, 2_000);
            s.once("drain", () => {
              clearTimeout(timer);
              pump();
            });
            return;
          }
        }
        resolve();
      };
      pump();
    });
    await blocked;
    const grown = (process.memoryUsage().rss - before) / 2 ** 20;
    console.log(
      `pipelining: ${sent} of ${total} requests taken, hub process RSS grew ${grown.toFixed(1)} MB`,
    );
    // The hub stopped reading long before all requests were taken (the rest wait in kernel buffers).
    expect(sent).toBeLessThan(total);
    expect(grown).toBeLessThan(150);

    // Other clients are served meanwhile.
    const registry = registryFor(hub.serviceConnectionString, hub.caPem);
    expect((await registry.getTwin("myDeviceId")).responseBody.deviceId).toBe("myDeviceId");

    // And the stuck connection is closed once its answers have not moved for idleTimeoutMs.
    await Promise.race([
      closedPromise(s),
      sleep(20_000).then(() => {
        throw new Error("the connection with unread answers is still open");
      }),
    ]);
  }, 60_000);
});
