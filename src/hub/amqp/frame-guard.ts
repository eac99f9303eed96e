import type { Duplex } from "node:stream";

/** The largest frame a client may send; advertised as the connection's max-frame-size (AMQP 1.0, 2.7.1). */
export const MAX_AMQP_FRAME_BYTES = 256 * 1024;

/**
 * rhea buffers a frame whole before parsing it, trusting the 4-byte size in its header: a client announcing a
 * 4 GB frame would make the hub hold everything it sends. This watches frame boundaries on the decrypted
 * stream (protocol headers are 8 bytes starting "AMQP"; frames start with their 4-byte size, AMQP 1.0 2.3.1)
 * and drops a connection that announces a frame over the limit the hub advertised.
 */
export function guardFrames(stream: Duplex, onOversize: (bytes: number) => void): void {
  let header = Buffer.alloc(0);
  let skip = 0;
  const onData = (chunk: Buffer) => {
    let i = 0;
    while (i < chunk.length) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - i);
        skip -= n;
        i += n;
        continue;
      }
      // Collect the 8 bytes that start a frame or a protocol header.
      const need = 8 - header.length;
      const take = chunk.subarray(i, i + need);
      header = Buffer.concat([header, take]);
      i += take.length;
      if (header.length < 8) return;
      if (header.toString("latin1", 0, 4) === "AMQP") {
        skip = 0;
      } else {
        const size = header.readUInt32BE(0);
        if (size > MAX_AMQP_FRAME_BYTES || size < 8) {
          stream.off("data", onData);
          onOversize(size);
          stream.destroy();
          return;
        }
        skip = size - 8;
      }
      header = Buffer.alloc(0);
    }
  };
  stream.on("data", onData);
}
