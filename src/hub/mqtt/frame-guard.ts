import type { Duplex } from "node:stream";

/**
 * The largest MQTT packet a device may send: IoT Hub refuses device-to-cloud messages over 256 KB, and a
 * topic adds at most 64 KB. aedes has no packet size limit of its own and buffers a whole packet before
 * parsing it, so without this a client could make the hub hold up to 256 MB per connection, even before
 * it has logged in.
 */
export const MAX_MQTT_PACKET_BYTES = 256 * 1024 + 64 * 1024;

/**
 * Watches the bytes aedes reads from `stream` (a passive "data" listener: aedes keeps reading in paused
 * mode) and follows only the packet framing, the type byte and the remaining-length varint of MQTT 3.1.1
 * section 2.2, to destroy the connection as soon as a packet announces a body over `limit`. Everything
 * else about the packets is left to aedes. Attach it right after handing the stream to aedes.
 */
export function guardPacketSize(
  stream: Duplex,
  onTooLarge: (announced: number) => void,
  limit = MAX_MQTT_PACKET_BYTES,
): void {
  let state: "type" | "length" | "body" = "type";
  let length = 0;
  let multiplier = 1;
  let lengthBytes = 0;
  let bodyLeft = 0;
  const onData = (chunk: Buffer) => {
    let i = 0;
    while (i < chunk.length) {
      if (state === "body") {
        const take = Math.min(bodyLeft, chunk.length - i);
        bodyLeft -= take;
        i += take;
        if (bodyLeft === 0) state = "type";
        continue;
      }
      const byte = chunk[i++];
      if (state === "type") {
        state = "length";
        length = 0;
        multiplier = 1;
        lengthBytes = 0;
        continue;
      }
      length += (byte & 0x7f) * multiplier;
      multiplier *= 128;
      lengthBytes++;
      if (length > limit) {
        stream.off("data", onData);
        onTooLarge(length);
        stream.destroy();
        return;
      }
      if (byte & 0x80) {
        // A fifth length byte is malformed; aedes refuses it, so there is nothing left to watch.
        if (lengthBytes === 4) return void stream.off("data", onData);
        continue;
      }
      bodyLeft = length;
      state = bodyLeft === 0 ? "type" : "body";
    }
  };
  stream.on("data", onData);
}
