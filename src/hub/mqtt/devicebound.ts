import { Readable } from "node:stream";
import type { Aedes, Client } from "aedes";
import type { ChannelEvents, DeviceReceiver, MessageChannel } from "../c2d/channel.js";
import type { DeviceRegistry } from "../registry/registry.js";
import type { createDownstream } from "./downstream.js";

/**
 * Messages in flight (sent, not yet PUBACK'd) per connection. IoT Hub's open-source MQTT gateway, the model of
 * its MQTT side, keeps up to 50 (`MaxPendingOutboundMessages`), which is also the queue's depth: a device may
 * hold its whole queue unacknowledged.
 */
export const MAX_IN_FLIGHT = 50;
/**
 * Bytes of cloud-to-device messages handed to a connection and not yet written through: the next message waits
 * for these (50 messages of 64 KB at once would otherwise pass the 1 MiB after which downstream.ts drops a
 * device that does not read).
 */
export const MAX_UNSENT_C2D_BYTES = 256 * 1024;

interface Session {
  /** Packet identifier -> what to call on its PUBACK. */
  inflight: Map<number, () => void>;
  nextId: number;
  unsentBytes: number;
  /** A send was refused for unsent bytes: tell the queue once they are written. */
  waiting: boolean;
}

export interface MqttDevicebound extends MessageChannel {
  /** The connection is registered (after CONNACK); a persistent session may still hold its subscription. */
  connected(client: Client): void;
  /** The connection's subscription to its devicebound topic was granted (or `#`). */
  subscribed(client: Client): void;
  /** The connection ended: its unacknowledged messages stay locked in the queue until their lock times out. */
  disconnected(client: Client): void;
}

/**
 * The MQTT side of cloud-to-device messages ("Communicate with an IoT hub using the MQTT protocol", receiving
 * cloud-to-device messages): a device that subscribed to `devices/{device-id}/messages/devicebound/#` gets each
 * message as a QoS 1 PUBLISH on `devices/{device-id}/messages/devicebound/{property-bag}` ("IoT Hub delivers
 * messages to the device using QoS 1"), and its PUBACK completes the message. "If the device connects with
 * CleanSession flag set to 0, the subscription is persisted across different sessions" (kept in the device's
 * record, so across hub restarts too); a clean session receives nothing until it subscribes again.
 *
 * aedes keeps QoS 1 messages for persistent sessions in its own in-memory outgoing queue and sends them again
 * on reconnection; the hub's queue is the durable one (c2d/), so aedes' outgoing queue is switched off here and
 * its PUBACK handling reports each acknowledged packet identifier to the sender.
 */
export function createDevicebound(opts: {
  broker: Aedes;
  clients: ReadonlyMap<string, Client>;
  registry: DeviceRegistry;
  downstream: ReturnType<typeof createDownstream>;
  events: ChannelEvents | undefined;
}): MqttDevicebound {
  const { broker, clients, registry, downstream, events } = opts;
  const sessions = new WeakMap<Client, Session>();
  const sessionOf = (client: Client): Session => {
    let s = sessions.get(client);
    if (!s) {
      s = { inflight: new Map(), nextId: 1, unsentBytes: 0, waiting: false };
      sessions.set(client, s);
    }
    return s;
  };

  const persistence = (broker as unknown as { persistence: Record<string, unknown> }).persistence;
  persistence.outgoingEnqueue = async () => {};
  persistence.outgoingEnqueueCombi = async () => {};
  persistence.outgoingUpdate = async () => {};
  persistence.outgoingStream = () => Readable.from([]);
  persistence.outgoingClearMessageId = async (client: Client, packet: { messageId?: number }) => {
    const session = sessions.get(client);
    const acked = packet.messageId === undefined ? undefined : session?.inflight.get(packet.messageId);
    if (acked && session) {
      session.inflight.delete(packet.messageId as number);
      acked();
    }
    return packet;
  };

  const receiverFor = (client: Client, subscribedAt: number): DeviceReceiver => ({
    subscribedAt,
    send(topic, body, acked) {
      const session = sessionOf(client);
      if (client.closed || session.inflight.size >= MAX_IN_FLIGHT) return false;
      if (session.unsentBytes >= MAX_UNSENT_C2D_BYTES) {
        session.waiting = true;
        return false;
      }
      let id = session.nextId;
      while (session.inflight.has(id)) id = id >= 65535 ? 1 : id + 1;
      session.nextId = id >= 65535 ? 1 : id + 1;
      session.inflight.set(id, acked);
      const bytes = body.length + topic.length;
      session.unsentBytes += bytes;
      downstream.send(
        client,
        topic,
        body,
        () => {
          session.unsentBytes -= bytes;
          if (session.waiting && session.unsentBytes < MAX_UNSENT_C2D_BYTES && !client.closed) {
            session.waiting = false;
            events?.ready(client.id);
          }
        },
        { messageId: id },
      );
      return true;
    },
  });

  return {
    receiver(deviceId) {
      const client = clients.get(deviceId);
      const subscribedAt = registry.find(deviceId)?.cloudToDeviceSubscribedAt;
      if (!client || client.closed || subscribedAt === undefined) return undefined;
      return receiverFor(client, subscribedAt);
    },
    connected(client) {
      if (registry.find(client.id)?.cloudToDeviceSubscribedAt !== undefined) events?.ready(client.id);
    },
    subscribed(client) {
      // After the SUBACK is on its way, so the device sees it before the first message.
      setImmediate(() => {
        if (clients.get(client.id) === client) events?.ready(client.id);
      });
    },
    disconnected(client) {
      sessions.get(client)?.inflight.clear();
    },
  };
}
