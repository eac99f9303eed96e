/**
 * Scenario 9's sender: the unmodified azure-iothub service Client (AMQP to `amqps://<HostName>`), in its own
 * process so it trusts the hub's CA through NODE_EXTRA_CA_CERTS (set by the parent) and does not share a core
 * with the devices. IPC: sends {ready} once open; "send" sends `count` messages round-robin over `deviceIds`,
 * at most `window` awaiting the hub's "accepted", each body carrying its send time (`t`, ms since the epoch) and
 * run number (`m`); answers {sent: {accepted, refused, seconds}}; "stop" closes.
 */

import common from "azure-iot-common";
import iothub from "azure-iothub";

const [connectionString] = process.argv.slice(2);
const send = (message: unknown) => process.send?.(message);
const nowMs = () => performance.timeOrigin + performance.now();

const client = iothub.Client.fromConnectionString(connectionString);
await client.open();
send({ ready: true });

process.on(
  "message",
  async (m: { cmd: string; deviceIds: string[]; count: number; window: number; run: number }) => {
    if (m.cmd === "stop") {
      await client.close().catch(() => {});
      process.exit(0);
    }
    if (m.cmd !== "send") return;
    const started = performance.now();
    let next = 0;
    let accepted = 0;
    let refused = 0;
    const worker = async () => {
      while (next < m.count) {
        const i = next++;
        const message = new common.Message(JSON.stringify({ t: nowMs(), m: m.run }));
        try {
          await client.send(m.deviceIds[i % m.deviceIds.length], message);
          accepted++;
        } catch {
          refused++;
        }
      }
    };
    await Promise.all(Array.from({ length: m.window }, worker));
    send({ sent: { accepted, refused, seconds: (performance.now() - started) / 1000 } });
  },
);
