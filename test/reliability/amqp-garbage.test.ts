import { connect, type TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { amqpConnect } from "../hub/amqp/support.js";
import { startTestHub } from "../hub/support.js";

type Hub = Awaited<ReturnType<typeof startTestHub>>;
let hub: Hub;
beforeAll(async () => {
  hub = await startTestHub({ inMemory: true });
});
afterAll(() => hub.cleanup());

function open(): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: hub.amqpPort, ca: hub.caPem, servername: "localhost" }, () =>
      resolve(s),
    );
    s.once("error", reject);
  });
}

/** Resolves once the hub has closed the socket; collects what it sent. */
function closed(s: TLSSocket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on("data", (c: Buffer) => chunks.push(c));
  s.on("error", () => {});
  return new Promise((resolve) => s.once("close", () => resolve(Buffer.concat(chunks))));
}

describe("the AMQP port under bad input", () => {
  it("closes a connection that speaks HTTP or garbage instead of AMQP", async () => {
    for (const bytes of ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x10\x00garbage"]) {
      const s = await open();
      const done = closed(s);
      s.write(bytes);
      await done;
    }
  });

  it("drops a connection whose frame announces more than the advertised maximum, without buffering it", async () => {
    const s = await open();
    const done = closed(s);
    // The SASL protocol header, then a frame header announcing 100 MB.
    s.write(Buffer.from("AMQP\x03\x01\x00\x00", "latin1"));
    const frame = Buffer.alloc(8);
    frame.writeUInt32BE(100 * 1024 * 1024, 0);
    frame[4] = 2;
    frame[5] = 1;
    s.write(frame);
    const sent = await done;
    // The hub answered the header with its SASL mechanisms before closing.
    expect(sent.subarray(0, 4).toString("latin1")).toBe("AMQP");
  });

  it("keeps serving after all that", async () => {
    const connection = await amqpConnect(hub);
    expect(connection.is_open()).toBe(true);
    connection.close();
  });
});
