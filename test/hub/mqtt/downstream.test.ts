import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer as createTlsServer, type TLSSocket, connect as tlsConnect } from "node:tls";
import type { Client } from "aedes";
import mqttPacket from "mqtt-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDownstream, publishFrame } from "../../../src/hub/mqtt/downstream.js";
import { MAX_UNSENT_BYTES } from "../../../src/hub/mqtt/limits.js";
import { ensureCertificates } from "../../../src/hub/tls/certs.js";

/**
 * The hub's send path to a device, over a real TLS connection on loopback: the device end is a plain TLS socket
 * that reads (or not), the hub end stands for the aedes client (its `conn`, `closed` and `close`).
 */
describe("publishFrame: a QoS 0 PUBLISH as MQTT 3.1.1 encodes it", () => {
  // Remaining Length sizes 1, 2, 3 and 4 bytes (MQTT 3.1.1 table 2.4: up to 127, 16,383, 2,097,151, 268,435,455).
  for (const size of [0, 1, 120, 125, 126, 200, 16_000, 16_381, 16_382, 70_000, 2_097_000, 2_100_000]) {
    it(`round-trips through mqtt-packet's parser with a ${size}-byte payload`, () => {
      const topic = "$iothub/twin/res/200/?$rid=7&$version=3";
      const payload = Buffer.alloc(size, 0x7a);
      if (size > 0) payload[size - 1] = 0x21;
      const frame = publishFrame(topic, payload);
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      const got: mqttPacket.Packet[] = [];
      parser.on("packet", (p) => got.push(p));
      parser.on("error", (e) => {
        throw e;
      });
      expect(parser.parse(frame)).toBe(0);
      expect(got).toHaveLength(1);
      const p = got[0] as mqttPacket.IPublishPacket;
      expect([p.cmd, p.topic, p.qos, p.dup, p.retain]).toEqual(["publish", topic, 0, false, false]);
      expect(Buffer.compare(p.payload as Buffer, payload)).toBe(0);
      // Byte for byte what the packet library makes.
      const reference = mqttPacket.generate({
        cmd: "publish",
        topic,
        payload,
        qos: 0,
        retain: false,
        dup: false,
      });
      expect(Buffer.compare(frame, reference)).toBe(0);
    });
  }

  it("encodes a topic's UTF-8 bytes and length, not its characters", () => {
    const topic = "devices/ünï-çødé/messages/devicebound/%24.to=%2Fdevices%2F%C3%BC";
    const frame = publishFrame(topic, Buffer.from("{}"));
    const reference = mqttPacket.generate({
      cmd: "publish",
      topic,
      payload: "{}",
      qos: 0,
      retain: false,
      dup: false,
    });
    expect(Buffer.compare(frame, reference)).toBe(0);
  });

  it("refuses a topic over 65,535 bytes", () => {
    expect(() => publishFrame("a".repeat(65_536), Buffer.alloc(0))).toThrow(/65,535 bytes/);
  });
});

describe("sending to a device (mqtt/downstream.ts)", () => {
  let dir: string;
  let certs: Awaited<ReturnType<typeof ensureCertificates>>;
  const open: Array<{ destroy(): void }> = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "downstream-"));
    certs = await ensureCertificates(dir, ["localhost"]);
  });
  afterAll(() => {
    for (const s of open) s.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A TLS connection: `hub` is the server end, `device` the client end (paused when it must not read). */
  async function pair(opts: { deviceReads: boolean }) {
    const server = createTlsServer({ key: certs.key, cert: certs.cert });
    const accepted = new Promise<TLSSocket>((resolve) => server.once("secureConnection", resolve));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const device = tlsConnect({
      host: "127.0.0.1",
      port: (server.address() as AddressInfo).port,
      ca: certs.caPem,
      servername: "localhost",
    });
    device.on("error", () => {});
    if (!opts.deviceReads) device.pause();
    const hub = await accepted;
    server.close();
    open.push(device, hub);
    const closed: string[] = [];
    const client = {
      id: "dev-1",
      conn: hub,
      closed: false,
      close() {
        if (this.closed) return;
        this.closed = true;
        closed.push("closed");
        hub.destroy();
      },
    };
    return { device, hub, client: client as unknown as Client & { closed: boolean }, closed };
  }

  it("writes each message as one MQTT 3.1.1 PUBLISH (QoS 0) frame, in order, and reports it written", async () => {
    const { device, client } = await pair({ deviceReads: true });
    const downstream = createDownstream(() => {});
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    const got: Array<{ topic: string; payload: string; qos: number }> = [];
    parser.on("packet", (p) => {
      if (p.cmd === "publish") got.push({ topic: p.topic, payload: p.payload.toString(), qos: p.qos });
    });
    device.on("data", (d: Buffer) => parser.parse(d));
    const written: number[] = [];
    for (let i = 0; i < 5; i++)
      downstream.send(client, `$iothub/twin/res/204/?$rid=${i}&$version=${i + 2}`, "", () => written.push(i));
    downstream.send(client, "$iothub/twin/PATCH/properties/desired/?$version=9", '{"a":1}', () =>
      written.push(5),
    );
    await expect.poll(() => got.length).toBe(6);
    expect(got.slice(0, 2)).toEqual([
      { topic: "$iothub/twin/res/204/?$rid=0&$version=2", payload: "", qos: 0 },
      { topic: "$iothub/twin/res/204/?$rid=1&$version=3", payload: "", qos: 0 },
    ]);
    expect(got[5]).toEqual({
      topic: "$iothub/twin/PATCH/properties/desired/?$version=9",
      payload: '{"a":1}',
      qos: 0,
    });
    await expect.poll(() => written).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it(`disconnects a device that does not read once more than ${MAX_UNSENT_BYTES / 1024} KB wait for it`, async () => {
    const { client, closed } = await pair({ deviceReads: false });
    const lines: string[] = [];
    const downstream = createDownstream((_id, line) => lines.push(line));
    const body = Buffer.alloc(60 * 1024, 0x61);
    // The kernel's socket buffers take the first megabytes; sending stops as soon as the hub closes.
    for (let i = 0; i < 2000 && !client.closed; i++) {
      downstream.send(client, "$iothub/twin/res/200/?$rid=1", body);
      if (i % 20 === 19) await new Promise((r) => setImmediate(r));
    }
    expect(closed).toEqual(["closed"]);
    expect(lines.join("\n")).toMatch(/dev-1 disconnected: \d+ bytes unread \(limit 1048576\)/);
  });

  it("disconnects a device whose socket stays full, even below that limit, after the drain timeout", async () => {
    const { hub, client, closed } = await pair({ deviceReads: false });
    const lines: string[] = [];
    const downstream = createDownstream((_id, line) => lines.push(line), 300);
    const body = Buffer.alloc(32 * 1024, 0x62);
    // Fill the kernel's buffers until the hub's own buffer holds something, well under MAX_UNSENT_BYTES.
    for (let i = 0; i < 2000 && hub.writableLength < 64 * 1024; i++) {
      downstream.send(client, "$iothub/twin/res/200/?$rid=1", body);
      await new Promise((r) => setImmediate(r));
    }
    expect(hub.writableLength).toBeGreaterThanOrEqual(64 * 1024);
    expect(hub.writableLength).toBeLessThan(MAX_UNSENT_BYTES);
    expect(closed).toEqual([]);
    await expect.poll(() => closed, { timeout: 3000 }).toEqual(["closed"]);
    expect(lines.join("\n")).toMatch(/dev-1 disconnected: nothing read for 0.3 s with answers waiting/);
  });

  it("keeps a slow reader that drains its socket within the drain timeout", async () => {
    const { device, hub, client, closed } = await pair({ deviceReads: false });
    const downstream = createDownstream(() => {}, 1500);
    const body = Buffer.alloc(32 * 1024, 0x63);
    for (let i = 0; i < 2000 && hub.writableLength < 64 * 1024; i++) {
      downstream.send(client, "$iothub/twin/res/200/?$rid=1", body);
      await new Promise((r) => setImmediate(r));
    }
    // The device starts reading after a while, well within the timeout, and the hub's buffer drains.
    await new Promise((r) => setTimeout(r, 300));
    device.resume();
    await expect.poll(() => hub.writableLength, { timeout: 3000 }).toBe(0);
    await new Promise((r) => setTimeout(r, 1700));
    expect(closed).toEqual([]);
  });

  it("reports a message to a closed connection as done without writing it", async () => {
    const { client } = await pair({ deviceReads: true });
    const downstream = createDownstream(() => {});
    client.close();
    let done = false;
    downstream.send(client, "$iothub/twin/res/204/?$rid=1", "", () => {
      done = true;
    });
    expect(done).toBe(true);
  });
});
