import { randomBytes } from "node:crypto";
import { createServer, type Socket, connect as tcpConnect } from "node:net";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub } from "../hub/support.js";
import { deviceToken, mqttLogin, rest, serviceToken, Tally } from "./support.js";

/**
 * Bad input, counted: random bytes and truncated packets on the hub's one TLS port, before the TLS handshake
 * (plain TCP garbage) and after it (garbage where HTTP or MQTT is expected). Each connection must end
 * closed, and the hub must keep serving both protocols afterwards.
 *
 * Where the hub can tell the bytes are garbage, it must close the connection itself (`fin: false`: the test
 * never closes its side). Where the bytes are a valid beginning cut short, no server can know that more is
 * not coming, so the test half-closes its side (`fin: true`) and the hub must then close too.
 */

type Hub = Awaited<ReturnType<typeof startTestHub>>;

interface Outcome {
  /** Bytes the hub sent back (after TLS decryption for post-handshake cases). */
  received: Buffer;
  /** Set when the connection ended with an error (reset, TLS alert...) rather than a clean close. */
  error?: string;
}

/** Waits for the socket to close and collects what came back. */
function untilClosed(socket: Socket | TLSSocket): Promise<Outcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | undefined;
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.on("error", (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    socket.on("close", () => resolve({ received: Buffer.concat(chunks), error }));
  });
}

/** Plain TCP: write `bytes` (in pieces) and optionally half-close; resolves once the hub has closed. */
async function plain(hub: Hub, pieces: Buffer[], fin: boolean): Promise<Outcome> {
  const socket = tcpConnect({ host: "127.0.0.1", port: hub.port });
  await new Promise<void>((r, j) => {
    socket.once("connect", () => r());
    socket.once("error", j);
  });
  const done = untilClosed(socket);
  for (const p of pieces) socket.write(p);
  if (fin) socket.end();
  return done;
}

/** TLS: handshake properly, then write `bytes` and optionally half-close; resolves once the hub has closed. */
async function afterHandshake(hub: Hub, pieces: Buffer[], fin: boolean): Promise<Outcome> {
  const socket = tlsConnect({ host: "localhost", port: hub.port, ca: hub.caPem, servername: "localhost" });
  await new Promise<void>((r, j) => {
    socket.once("secureConnect", () => r());
    socket.once("error", j);
  });
  const done = untilClosed(socket);
  for (const p of pieces) socket.write(p);
  if (fin) socket.end();
  return done;
}

/** A real TLS ClientHello, captured from Node's own client against a recorder. */
async function captureClientHello(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const server = createServer((s) => {
      s.once("data", (d: Buffer) => {
        resolve(d);
        s.destroy();
        server.close();
      });
    });
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      const c = tlsConnect({ host: "127.0.0.1", port, servername: "localhost", rejectUnauthorized: false });
      c.on("error", () => {});
    });
    server.on("error", reject);
  });
}

/** An MQTT 3.1.1 CONNECT packet, with overridable pieces for malformed variants. */
function connectPacket(
  opts: {
    protocol?: string;
    level?: number;
    flags?: number;
    clientId?: string;
    user?: string;
    pass?: string;
  } = {},
): Buffer {
  const str = (s: string) => {
    const b = Buffer.from(s, "utf8");
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    return Buffer.concat([len, b]);
  };
  const flags = opts.flags ?? (opts.user !== undefined ? 0xc2 : 0x02);
  const body = Buffer.concat([
    str(opts.protocol ?? "MQTT"),
    Buffer.from([opts.level ?? 4, flags, 0x00, 0x3c]),
    str(opts.clientId ?? "garbage-client"),
    ...(opts.user !== undefined ? [str(opts.user), str(opts.pass ?? "")] : []),
  ]);
  return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body]);
}

function remainingLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}

/** Random bytes whose first byte is not 0x16 (a TLS handshake record) so they are garbage at once. */
function noise(length: number, first?: number): Buffer {
  const b = randomBytes(length);
  b[0] = first ?? (b[0] === 0x16 ? 0x17 : b[0]);
  return b;
}

const http = (text: string) => Buffer.from(text, "latin1");

describe("bad input, counted: garbage and truncated packets on the TLS port", () => {
  let hub: Hub;
  let hello: Buffer;
  let deviceKey: string;
  const tally = new Tally("garbage on the TLS port");

  beforeAll(async () => {
    hub = await startTestHub();
    hello = await captureClientHello();
    expect(hello[0]).toBe(0x16);
    deviceKey = /SharedAccessKey=([^;]+)/.exec(hub.deviceConnectionString())![1];
  });
  afterAll(async () => {
    console.log(tally.line());
    await hub?.cleanup();
  });

  /** The hub still answers REST and accepts an MQTT login. */
  async function stillServing() {
    const res = await rest(hub, "GET", "/statistics/devices", { auth: serviceToken(hub) });
    expect(res.status).toBe(200);
    const login = await mqttLogin(hub, "myDeviceId", deviceToken(hub, "myDeviceId", deviceKey));
    expect(login.ok, login.ok ? "" : login.reason).toBe(true);
    if (login.ok) login.client.end(true);
  }

  const validConnect = () =>
    connectPacket({
      clientId: "myDeviceId",
      user: `${hub.hostName}/myDeviceId/?api-version=2021-04-12`,
      pass: deviceToken(hub, "myDeviceId", deviceKey),
    });

  const PRE_TLS: Array<{ name: string; pieces: () => Buffer[]; fin: boolean }> = [
    { name: "1 random byte", pieces: () => [noise(1)], fin: true },
    { name: "16 random bytes", pieces: () => [noise(16)], fin: false },
    { name: "517 random bytes", pieces: () => [noise(517)], fin: false },
    { name: "64 KB random bytes", pieces: () => [noise(65_536)], fin: false },
    { name: "1 MB random bytes", pieces: () => [noise(1_048_576)], fin: false },
    {
      name: "plain-text HTTP request",
      pieces: () => [http("GET /devices HTTP/1.1\r\nHost: localhost\r\n\r\n")],
      fin: false,
    },
    { name: "plain-text MQTT CONNECT", pieces: () => [connectPacket()], fin: false },
    {
      name: "HTTP/2 preface in plain text",
      pieces: () => [http("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")],
      fin: false,
    },
    {
      name: "SSLv2-style ClientHello",
      pieces: () => [
        Buffer.concat([
          Buffer.from("802e0100020015000000100100800700c0030080060040020080040080", "hex"),
          Buffer.from("000039", "hex"),
          randomBytes(16),
        ]),
      ],
      fin: false,
    },
    {
      name: "TLS application data before any handshake",
      pieces: () => [Buffer.from("1703030010", "hex"), randomBytes(16)],
      fin: false,
    },
    {
      name: "TLS alert record before any handshake",
      pieces: () => [Buffer.from("15030300020228", "hex")],
      fin: false,
    },
    {
      name: "TLS handshake record header claiming 16 KB, then silence",
      pieces: () => [Buffer.from("1603014000", "hex")],
      fin: true,
    },
    { name: "ClientHello cut after 5 bytes", pieces: () => [hello.subarray(0, 5)], fin: true },
    {
      name: "ClientHello cut in half",
      pieces: () => [hello.subarray(0, Math.floor(hello.length / 2))],
      fin: true,
    },
    {
      name: "ClientHello missing its last byte",
      pieces: () => [hello.subarray(0, hello.length - 1)],
      fin: true,
    },
    {
      name: "ClientHello with its body scrambled",
      pieces: () => [Buffer.concat([hello.subarray(0, 9), noise(hello.length - 9, 0)])],
      fin: false,
    },
    { name: "complete ClientHello, then random bytes", pieces: () => [hello, noise(256)], fin: false },
    { name: "complete ClientHello, then the client goes away", pieces: () => [hello], fin: true },
    { name: "nothing at all, then the client goes away", pieces: () => [], fin: true },
  ];

  const POST_TLS: Array<{ name: string; pieces: () => Buffer[]; fin: boolean }> = [
    { name: "random bytes instead of HTTP or MQTT", pieces: () => [noise(512, 0x01)], fin: false },
    {
      name: "random bytes behind an MQTT CONNECT type byte",
      pieces: () => [Buffer.from([0x10]), randomBytes(64)],
      fin: true,
    },
    {
      name: "MQTT CONNECT with an unknown protocol name",
      pieces: () => [connectPacket({ protocol: "MQTX" })],
      fin: false,
    },
    { name: "MQTT CONNECT with protocol level 99", pieces: () => [connectPacket({ level: 99 })], fin: false },
    {
      name: "MQTT CONNECT with the reserved flag set",
      pieces: () => [connectPacket({ flags: 0x03 })],
      fin: false,
    },
    {
      name: "MQTT CONNECT with a password but no user name",
      pieces: () => [connectPacket({ flags: 0x42 })],
      fin: false,
    },
    {
      name: "MQTT CONNECT with a malformed remaining length",
      pieces: () => [Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01])],
      fin: false,
    },
    { name: "MQTT CONNECT cut short", pieces: () => [validConnect().subarray(0, 20)], fin: true },
    {
      name: "MQTT CONNECT claiming 200 MB, 1 KB sent",
      pieces: () => [Buffer.from([0x10]), remainingLength(200 * 1024 * 1024), randomBytes(1024)],
      fin: false,
    },
    {
      name: "MQTT login, then a PUBLISH claiming 100 MB, 64 KB sent",
      pieces: () => [
        validConnect(),
        Buffer.from([0x30]),
        remainingLength(100 * 1024 * 1024),
        randomBytes(65_536),
      ],
      fin: false,
    },
    {
      name: "MQTT login, then a packet of reserved type 0",
      pieces: () => [validConnect(), Buffer.from([0x00, 0x00])],
      fin: false,
    },
    { name: "MQTT login, then a second CONNECT", pieces: () => [validConnect(), validConnect()], fin: false },
    {
      name: "MQTT login, then a PUBLISH cut short",
      pieces: () => [validConnect(), Buffer.from([0x30, 0x40, 0x00, 0x30, 0x61])],
      fin: true,
    },
    {
      name: "MQTT login, then random bytes",
      pieces: () => [validConnect(), Buffer.from([0xf0]), randomBytes(128)],
      fin: true,
    },
    {
      name: "MQTT login, then an AUTH packet (MQTT 5 only)",
      pieces: () => [validConnect(), Buffer.from([0xf0, 0x00])],
      fin: false,
    },
    {
      name: "HTTP request line of control bytes",
      pieces: () => [http("\u0001\u0002 / HTTP/1.1\r\n\r\n")],
      fin: false,
    },
    {
      name: "HTTP header with a NUL byte",
      pieces: () => [http("GET /devices HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b\r\n\r\n")],
      fin: false,
    },
    {
      name: "HTTP headers cut short",
      pieces: () => [http("PATCH /twins/myDeviceId HTTP/1.1\r\nHost: local")],
      fin: true,
    },
    {
      name: "HTTP body shorter than its Content-Length",
      pieces: () => [
        http(
          'PATCH /twins/myDeviceId HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"tags"',
        ),
      ],
      fin: true,
    },
    {
      name: "HTTP malformed chunked body",
      pieces: () => [
        http("POST /devices/query HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n"),
      ],
      fin: false,
    },
    {
      name: "HTTP 100 KB header",
      pieces: () => [http(`GET /devices HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(100_000)}\r\n\r\n`)],
      fin: false,
    },
    {
      name: "HTTP/2 preface after TLS",
      pieces: () => [http("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")],
      fin: false,
    },
    { name: "nothing after the handshake, then the client goes away", pieces: () => [], fin: true },
  ];

  it.each(PRE_TLS)("before TLS: $name -> closed, still serving", async (c) => {
    await tally.run(`pre-TLS ${c.name}`, async () => {
      const outcome = await plain(hub, c.pieces(), c.fin);
      // Whatever came back, it was never an HTTP or MQTT answer in clear text.
      expect(outcome.received.subarray(0, 4).toString("latin1")).not.toBe("HTTP");
      await stillServing();
    });
  });

  it.each(POST_TLS)("after TLS: $name -> closed, still serving", async (c) => {
    await tally.run(`post-TLS ${c.name}`, async () => {
      const outcome = await afterHandshake(hub, c.pieces(), c.fin);
      const text = outcome.received.toString("latin1");
      // An HTTP answer, if any, is an error; an MQTT answer, if any, is never a successful CONNACK followed
      // by service for the garbage (the hub may accept a valid login before the garbage arrives).
      if (text.startsWith("HTTP/1.1")) expect(Number(text.slice(9, 12))).toBeGreaterThanOrEqual(400);
      await stillServing();
    });
  });

  it("control: a 200 KB telemetry message and 100 small packets in one write still go through", async () => {
    await tally.run("large and pipelined valid packets", async () => {
      const login = await mqttLogin(hub, "myDeviceId", deviceToken(hub, "myDeviceId", deviceKey));
      if (!login.ok) throw new Error(login.reason);
      const client = login.client;
      await new Promise<void>((resolve, reject) =>
        client.publish("devices/myDeviceId/messages/events/", randomBytes(200 * 1024), { qos: 1 }, (e) =>
          e ? reject(e) : resolve(),
        ),
      );
      await Promise.all(
        Array.from(
          { length: 100 },
          (_, i) =>
            new Promise<void>((resolve, reject) =>
              client.publish(`devices/myDeviceId/messages/events/n=${i}`, "{}", { qos: 1 }, (e) =>
                e ? reject(e) : resolve(),
              ),
            ),
        ),
      );
      expect(client.connected).toBe(true);
      client.end(true);
    });
  });

  it("50 connections reset right after connecting, and 50 reset mid-handshake", async () => {
    await tally.run("connection resets", async () => {
      await Promise.all(
        Array.from({ length: 100 }, async (_, i) => {
          const socket = tcpConnect({ host: "127.0.0.1", port: hub.port });
          socket.on("error", () => {});
          await new Promise<void>((r) => socket.once("connect", () => r()));
          if (i % 2) socket.write(hello.subarray(0, 40));
          const gone = new Promise<void>((r) => socket.once("close", () => r()));
          socket.resetAndDestroy();
          await gone;
        }),
      );
      await stillServing();
    });
  });

  it("tried at least 40 kinds of garbage and handled every one as expected", () => {
    expect(tally.tried).toBeGreaterThanOrEqual(40);
    expect(tally.handled).toBe(tally.tried);
  });
});
