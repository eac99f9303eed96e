import type { Client } from "aedes";
import { MAX_UNSENT_BYTES } from "./limits.js";

/**
 * Everything the hub sends a device (twin answers, desired updates) goes through `send`: QoS 0, to that one
 * client, and bounded. Bytes handed to aedes whose write has not completed are counted per connection (a socket
 * that does not drain keeps them: aedes waits for "drain"; the kernel's socket buffers hide the first megabytes
 * from `writableLength`, so the hub counts them itself). Over MAX_UNSENT_BYTES the connection is closed instead
 * of buffering more (limits.ts).
 */
type DeliverQoS = (packet: Record<string, unknown>, done: () => void) => void;

export function createDownstream(log: (deviceId: string, line: string) => void) {
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
    client.publish({ cmd: "publish", topic, payload, qos: 0, retain: false, dup: false }, written);
  }

  return { send };
}
