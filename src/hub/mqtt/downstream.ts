import type { Duplex } from "node:stream";
import type { Client } from "aedes";
import mqttPacket from "mqtt-packet";
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
    const frame = mqttPacket.generate({ cmd: "publish", topic, payload, qos: 0, retain: false, dup: false });
    if (!writeFrame(client.conn, frame, written)) watchDrain(client);
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

/**
 * A QoS 0 PUBLISH goes to the socket as one frame built by mqtt-packet (the packet library aedes itself writes
 * with, MQTT 3.1.1 encoding as aedes uses), skipping aedes' `client.publish`: that path copies the packet twice,
 * consults the forwarding hooks of a routed broker (the hub routes nothing, see routing.ts) and defers each
 * message by a `setImmediate`, then writes it as four or five separate chunks. Frames written in the same turn
 * to one connection leave in one write: the socket is corked until the next tick, as mqtt-packet does.
 * `done` runs once the frame is handed to the operating system, or the write failed (the connection is gone).
 */
function writeFrame(conn: Duplex, frame: Buffer, done: () => void): boolean {
  if (conn.destroyed || !conn.writable) {
    done();
    return true;
  }
  if (!corked.has(conn)) {
    corked.add(conn);
    conn.cork();
    process.nextTick(uncork, conn);
  }
  return conn.write(frame, () => done());
}

const corked = new WeakSet<Duplex>();

function uncork(conn: Duplex): void {
  corked.delete(conn);
  conn.uncork();
}
