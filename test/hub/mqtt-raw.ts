import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { eventually } from "./support.js";

/**
 * A raw MQTT 3.1.1 client over TLS for what the SDKs and mqtt.js never send (packets before CONNACK, several
 * packets in one write, duplicate filters, clients that never read). Encodes the few packets the tests need and
 * decodes what the hub sends back.
 */

function remainingLength(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

const str = (s: string | Buffer) => {
  const b = typeof s === "string" ? Buffer.from(s, "utf8") : s;
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
};

const packet = (first: number, body: Buffer) =>
  Buffer.concat([Buffer.from([first, ...remainingLength(body.length)]), body]);

export const mqttPacket = {
  connect(
    clientId: string,
    username: string,
    password: string,
    clean = true,
    keepalive = 60,
    will?: { topic: string; payload: string; retain?: boolean },
  ): Buffer {
    const willFlags = will ? 0x04 | (will.retain ? 0x20 : 0) : 0;
    const flags = 0x80 | 0x40 | willFlags | (clean ? 0x02 : 0);
    const header = Buffer.concat([str("MQTT"), Buffer.from([4, flags, keepalive >> 8, keepalive & 0xff])]);
    const willPart = will ? [str(will.topic), str(will.payload)] : [];
    return packet(0x10, Buffer.concat([header, str(clientId), ...willPart, str(username), str(password)]));
  },
  subscribe(messageId: number, filters: Array<[string, number]>): Buffer {
    const parts = filters.map(([f, q]) => Buffer.concat([str(f), Buffer.from([q])]));
    return packet(0x82, Buffer.concat([Buffer.from([messageId >> 8, messageId & 0xff]), ...parts]));
  },
  publish(
    topic: string,
    payload: string | Buffer,
    opts: { qos?: 0 | 1 | 2; retain?: boolean; messageId?: number } = {},
  ) {
    const qos = opts.qos ?? 0;
    const first = 0x30 | (qos << 1) | (opts.retain ? 1 : 0);
    const id =
      qos > 0 ? Buffer.from([(opts.messageId ?? 1) >> 8, (opts.messageId ?? 1) & 0xff]) : Buffer.alloc(0);
    return packet(first, Buffer.concat([str(topic), id, Buffer.from(payload)]));
  },
};

export interface Received {
  type: "connack" | "publish" | "puback" | "suback" | "unsuback" | "pingresp" | "other";
  /** connack: return code; suback: return codes; puback: packet id. */
  codes?: number[];
  topic?: string;
  payload?: Buffer;
}

export interface RawClient {
  socket: TLSSocket;
  received: Received[];
  closed: boolean;
  write(...packets: Buffer[]): void;
  waitFor(predicate: (r: Received[]) => boolean, ms?: number): Promise<void>;
  waitClosed(ms?: number): Promise<void>;
  end(): void;
}

/** Opens a TLS connection to the hub's port; `read: false` makes a client that never reads what it is sent. */
export function rawMqtt(port: number, ca: string, opts: { read?: boolean } = {}): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: "localhost", port, ca, servername: "localhost" });
    const client: RawClient = {
      socket,
      received: [],
      closed: false,
      write: (...packets) => socket.write(Buffer.concat(packets)),
      waitFor: (predicate, ms = 10_000) =>
        eventually(() => (predicate(client.received) ? true : undefined), ms).then(() => {}),
      waitClosed: (ms = 10_000) => eventually(() => (client.closed ? true : undefined), ms).then(() => {}),
      end: () => socket.destroy(),
    };
    let buffer = Buffer.alloc(0);
    if (opts.read !== false) {
      socket.on("data", (chunk: Buffer) => {
        buffer = Buffer.concat([buffer, chunk]);
        for (;;) {
          const parsed = parseOne(buffer);
          if (!parsed) break;
          client.received.push(parsed.packet);
          buffer = buffer.subarray(parsed.used);
        }
      });
    } else {
      socket.pause();
    }
    socket.on("close", () => {
      client.closed = true;
    });
    socket.on("error", () => {});
    socket.once("secureConnect", () => resolve(client));
    socket.once("error", reject);
  });
}

function parseOne(buf: Buffer): { packet: Received; used: number } | undefined {
  if (buf.length < 2) return undefined;
  let length = 0;
  let multiplier = 1;
  let i = 1;
  for (;;) {
    if (i >= buf.length) return undefined;
    const byte = buf[i++];
    length += (byte & 0x7f) * multiplier;
    multiplier *= 128;
    if (!(byte & 0x80)) break;
  }
  if (buf.length < i + length) return undefined;
  const body = buf.subarray(i, i + length);
  const type = buf[0] >> 4;
  const used = i + length;
  switch (type) {
    case 2:
      return { packet: { type: "connack", codes: [body[1]] }, used };
    case 3: {
      const topicLength = body.readUInt16BE(0);
      const qos = (buf[0] >> 1) & 3;
      const start = 2 + topicLength + (qos > 0 ? 2 : 0);
      return {
        packet: {
          type: "publish",
          topic: body.subarray(2, 2 + topicLength).toString("utf8"),
          payload: Buffer.from(body.subarray(start)),
        },
        used,
      };
    }
    case 4:
      return { packet: { type: "puback", codes: [body.readUInt16BE(0)] }, used };
    case 9:
      return { packet: { type: "suback", codes: [...body.subarray(2)] }, used };
    case 11:
      return { packet: { type: "unsuback" }, used };
    case 13:
      return { packet: { type: "pingresp" }, used };
    default:
      return { packet: { type: "other" }, used };
  }
}
