import type { Client } from "aedes";
import { MAX_UNSENT_BYTES } from "./limits.js";

/**
 * Everything the hub sends a device (twin answers, desired updates) goes through `send`: QoS 0, to that one
 * client, and bounded. Bytes handed to aedes whose write has not completed are counted per connection (a socket
 * that does not drain keeps them: aedes waits for "drain"; the kernel's socket buffers hide the first megabytes
 * from `writableLength`, so the hub counts them itself). Over MAX_UNSENT_BYTES the connection is closed instead
 * of buffering more (limits.ts).
 */
export function createDownstream(log: (deviceId: string, line: string) => void) {
  const unflushed = new WeakMap<Client, number>();

  /** Sends one message; `done` runs once it is written through, dropped, or the connection is gone. */
  function send(client: Client, topic: string, body: string | Buffer, done: () => void = () => {}): void {
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
    client.publish({ cmd: "publish", topic, payload, qos: 0, retain: false, dup: false }, () => {
      unflushed.set(client, (unflushed.get(client) ?? bytes) - bytes);
      done();
    });
  }

  return { send };
}
