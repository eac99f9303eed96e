import type { EventEmitter } from "node:events";
import type { Client, Subscription } from "aedes";

/**
 * Two SUBSCRIBE rules aedes does not follow on its own, fixed in front of it (no fork):
 * - QoS 2: "When a device app subscribes to a topic with QoS 2, IoT Hub grants maximum QoS level 1 in the
 *   SUBACK packet" ("Communicate with an IoT hub using the MQTT protocol"). aedes grants what was asked and
 *   takes the granted QoS from the packet before any hook runs, so the request itself is lowered to 1.
 * - Duplicate filters in one SUBSCRIBE: "The SUBACK Packet sent by the Server to the Client MUST contain a
 *   return code for each Topic Filter/QoS pair" (MQTT 3.1.1 §3.8.4, MQTT-3.8.4-5), and a repeated filter
 *   replaces the earlier one (MQTT-3.8.4-3). aedes de-duplicates the list and answers one code per distinct
 *   filter. For such a packet the list handed to aedes keeps the last of each filter and no packet identifier
 *   (so aedes writes no SUBACK); once aedes has processed it ("subscribe" event, same turn as its own SUBACK
 *   would be written), `complete` writes the SUBACK with one code per filter as sent.
 * Both act on the parsed packet before aedes sees it, through a listener placed ahead of aedes' own on the
 * client's packet parser.
 */
export function createSubscribeAcks() {
  const plans = new WeakMap<
    Subscription,
    { messageId: number; requested: Array<{ topic: string; qos: number }> }
  >();

  function tap(client: Client): void {
    const parser = (client as unknown as { _parser?: EventEmitter })._parser;
    if (typeof parser?.prependListener !== "function") {
      throw new Error("aedes changed: its client has no packet parser to watch SUBSCRIBE packets on");
    }
    parser.prependListener(
      "packet",
      (packet: { cmd: string; messageId?: number; subscriptions?: Subscription[] }) => {
        if (packet.cmd !== "subscribe" || !Array.isArray(packet.subscriptions)) return;
        const subs = packet.subscriptions;
        for (const s of subs) if (s.qos > 1) s.qos = 1;
        if (subs.length < 2 || packet.messageId === undefined) return;
        const last = new Map<string, Subscription>();
        for (const s of subs) last.set(s.topic, s);
        if (last.size === subs.length) return;
        const kept = [...last.values()];
        plans.set(kept[0], {
          messageId: packet.messageId,
          requested: subs.map((s) => ({ topic: s.topic, qos: s.qos })),
        });
        packet.subscriptions = kept;
        packet.messageId = undefined;
      },
    );
  }

  /** aedes' "subscribe" event: `subs` carry the granted QoS (128 = refused) of each distinct filter. */
  function complete(subs: Subscription[], client: Client): void {
    const plan = subs.length > 0 ? plans.get(subs[0]) : undefined;
    if (!plan) return;
    plans.delete(subs[0]);
    const granted = new Map(subs.map((s) => [s.topic, s.qos as number]));
    const codes = plan.requested.map((r) => (granted.get(r.topic) === 128 ? 128 : r.qos));
    if (!client.closed) client.conn.write(subackPacket(plan.messageId, codes));
  }

  return { tap, complete };
}

/** SUBACK (MQTT 3.1.1 §3.9): type 9, remaining length, packet identifier, one return code per filter. */
export function subackPacket(messageId: number, codes: number[]): Buffer {
  const length: number[] = [];
  let n = 2 + codes.length;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    length.push(byte);
  } while (n > 0);
  return Buffer.from([0x90, ...length, messageId >> 8, messageId & 0xff, ...codes]);
}
