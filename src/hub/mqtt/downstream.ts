import type { Duplex } from "node:stream";
import type { Client } from "aedes";
import { DRAIN_TIMEOUT_MS, MAX_UNSENT_BYTES } from "./limits.js";

/**
 * Everything the hub sends a device (twin answers, desired updates) goes through `send`: QoS 0, to that one
 * client, and bounded. Bytes handed to aedes whose write has not completed are counted per connection (a socket
 * that does not drain keeps them: aedes waits for "drain"; the kernel's socket buffers hide the first megabytes
 * from `writableLength`, so the hub counts them itself). Over MAX_UNSENT_BYTES the connection is closed instead
 * of buffering more (limits.ts).
 */
type DeliverQoS = (packet: Record<string, unknown>, done: () => void) => void;

export function createDownstream(
  log: (deviceId: string, line: string) => void,
  drainTimeoutMs = DRAIN_TIMEOUT_MS,
) {
  const unflushed = new WeakMap<Client, number>();

  /**
   * Sends one message; `done` runs once it is written through, dropped, or the connection is gone. With
   * `qos1`, a QoS 1 PUBLISH with that packet identifier (cloud-to-device messages; see devicebound.ts), sent
   * through aedes' QoS path so it is written in turn with everything else.
   */
  function send(
    client: Client,
    topic: string,
    body: string | Buffer,
    done: () => void = () => {},
    qos1?: { messageId: number },
  ): void {
    if (client.closed) {
      done();
      return;
    }
    const unsent = Math.max(
      unflushed.get(client) ?? 0,
      (client.conn as { writableLength?: number }).writableLength ?? 0,
    );
    if (unsent > MAX_UNSENT_BYTES) {
      log(client.id, `MQTT ${client.id} disconnected: ${unsent} bytes unread (limit ${MAX_UNSENT_BYTES})`);
      client.close();
      done();
      return;
    }
    const payload = typeof body === "string" ? Buffer.from(body) : body;
    const bytes = topic.length + payload.length + 5;
    unflushed.set(client, (unflushed.get(client) ?? 0) + bytes);
    const written = () => {
      unflushed.set(client, (unflushed.get(client) ?? bytes) - bytes);
      done();
    };
    if (qos1) {
      // aedes' deliverQoS keeps a packet identifier it is given; `publish` would allocate its own and, for a
      // persistent session, park the message in aedes' in-memory outgoing queue (the hub's queue is SQLite).
      const deliver = (client as unknown as { deliverQoS: DeliverQoS }).deliverQoS;
      deliver(
        { cmd: "publish", topic, payload, qos: 1, retain: false, dup: false, messageId: qos1.messageId },
        written,
      );
      return;
    }
    queueFrame(client, publishFrame(topic, payload), written);
  }

  /**
   * A QoS 0 PUBLISH goes to the socket as one frame (publishFrame), skipping aedes' `client.publish`: that path
   * copies the packet twice, consults the forwarding hooks of a routed broker (the hub routes nothing, see
   * routing.ts) and defers each message by a `setImmediate`, then writes it as four or five separate chunks. The
   * frames of one turn to one connection leave in one write at the next tick (as mqtt-packet corks a stream until
   * then), with one callback: each frame's `done` runs once that write is handed to the operating system, or
   * failed (the connection is gone).
   */
  function queueFrame(client: Client, frame: Buffer, done: () => void): void {
    const conn = client.conn as Duplex;
    if (conn.destroyed || !conn.writable) {
      done();
      return;
    }
    let batch = batches.get(conn);
    if (!batch) {
      batch = { client, frames: [], dones: [] };
      batches.set(conn, batch);
      process.nextTick(flush, conn, batch);
    }
    batch.frames.push(frame);
    batch.dones.push(done);
  }

  function flush(conn: Duplex, batch: Batch): void {
    batches.delete(conn);
    const { frames, dones } = batch;
    const all = () => {
      for (const done of dones) done();
    };
    if (conn.destroyed || !conn.writable) {
      all();
      return;
    }
    if (!conn.write(frames.length === 1 ? frames[0] : Buffer.concat(frames), all)) watchDrain(batch.client);
  }

  /** A socket that stays full for `drainTimeoutMs` closes its connection (limits.ts, DRAIN_TIMEOUT_MS). */
  function watchDrain(client: Client): void {
    const conn = client.conn as Duplex;
    if (draining.has(conn)) return;
    const timer = setTimeout(() => {
      log(
        client.id,
        `MQTT ${client.id} disconnected: nothing read for ${drainTimeoutMs / 1000} s with answers waiting`,
      );
      client.close();
    }, drainTimeoutMs);
    timer.unref();
    draining.add(conn);
    const stop = () => {
      clearTimeout(timer);
      draining.delete(conn);
      conn.off("drain", stop);
      conn.off("close", stop);
    };
    conn.once("drain", stop);
    conn.once("close", stop);
  }

  return { send };
}

const draining = new WeakSet<Duplex>();

interface Batch {
  client: Client;
  frames: Buffer[];
  dones: Array<() => void>;
}

/** The frames written to each connection in this turn, not yet handed to it. */
const batches = new WeakMap<Duplex, Batch>();

/**
 * A QoS 0 PUBLISH packet, MQTT 3.1.1 as aedes writes it: fixed header 0x30 (QoS 0, DUP 0, RETAIN 0; section
 * 3.3.1), the Remaining Length as a variable byte integer (2.2.3), the topic as a UTF-8 string with its 16-bit
 * length (1.5.3, 3.3.2.1), no packet identifier at QoS 0 (3.3.2.2), then the payload (3.3.3). Built directly in
 * one buffer: a packet library's general encoder costs several allocations per message, and the hub sends one
 * of these for every twin request it answers. test/hub/mqtt/downstream.test.ts reads them back with mqtt-packet.
 */
export function publishFrame(topic: string, payload: Buffer): Buffer {
  const topicBytes = Buffer.byteLength(topic);
  if (topicBytes > 0xffff) throw new RangeError("an MQTT topic is at most 65,535 bytes");
  const remaining = 2 + topicBytes + payload.length;
  if (remaining > 268_435_455) throw new RangeError("an MQTT packet is at most 256 MB");
  let lengthBytes = 1;
  for (let n = remaining; n >= 128; n = Math.floor(n / 128)) lengthBytes++;
  const frame = Buffer.allocUnsafe(1 + lengthBytes + remaining);
  frame[0] = 0x30;
  let at = 1;
  let n = remaining;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    frame[at++] = byte;
  } while (n > 0);
  frame.writeUInt16BE(topicBytes, at);
  at += 2;
  at += frame.write(topic, at, "utf8");
  payload.copy(frame, at);
  return frame;
}
