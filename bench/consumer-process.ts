/**
 * Scenario 6's reader: an unmodified @azure/event-hubs EventHubConsumerClient reading every partition of the
 * hub's Event Hubs-compatible endpoint, in its own process (it trusts the hub's CA through
 * NODE_EXTRA_CA_CERTS, set by the parent). Each event's body carries the time it was sent
 * (`t`, ms since the epoch with fractions) and whether it counts (`m`); the end-to-end latency is receive
 * time - `t`. IPC: sends {ready} once every partition's receiver has reported, answers "report" with the
 * latencies of the run being measured, "reset" starts measuring run `run`, "stop" closes.
 */
import { EventHubConsumerClient } from "@azure/event-hubs";

const [connectionString] = process.argv.slice(2);
const send = (message: unknown) => process.send?.(message);
const nowMs = () => performance.timeOrigin + performance.now();

const client = new EventHubConsumerClient("$Default", connectionString);
const partitions = await client.getPartitionIds();
const seen = new Set<string>();
/** Latencies of the messages of the run being measured (`m` = its number; 0 = not measured). */
let run = -1;
let latencies: number[] = [];
let received = 0;
let ready = false;
const subscription = client.subscribe(
  {
    processEvents: async (events, context) => {
      const at = nowMs();
      for (const e of events) {
        received++;
        const body = e.body as { t?: number; m?: number };
        if (body?.m === run && typeof body.t === "number") latencies.push(at - body.t);
      }
      seen.add(context.partitionId);
      if (!ready && seen.size === partitions.length) {
        ready = true;
        send({ ready: partitions.length });
      }
    },
    processError: async (error) => {
      send({ error: String(error?.message ?? error) });
    },
  },
  { startPosition: { enqueuedOn: new Date() }, maxBatchSize: 500, maxWaitTimeInSeconds: 0.2 },
);

process.on("message", async (m: { cmd: string; run?: number }) => {
  if (m.cmd === "report") send({ report: { latencies, received } });
  if (m.cmd === "reset") {
    run = m.run ?? -1;
    latencies = [];
    received = 0;
    send({ reset: true });
  }
  if (m.cmd === "stop") {
    await subscription.close();
    await client.close();
    send({ stopped: true });
    setTimeout(() => process.exit(0), 50);
  }
});
process.on("disconnect", () => process.exit(0));
