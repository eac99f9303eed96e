// A plain @azure/event-hubs consumer, run as a child process so NODE_EXTRA_CA_CERTS can make it trust the
// hub's CA (the SDK has no option for a CA). Reads its job from argv[2] as JSON and prints one JSON line per
// event, then {"done":true}. Used by the Event Hubs-compatible endpoint tests.
import { EventHubConsumerClient } from "@azure/event-hubs";

const job = JSON.parse(process.argv[2]);
const client = new EventHubConsumerClient(job.consumerGroup ?? "$Default", job.connectionString, {
  retryOptions: { maxRetries: 0, timeoutInMs: 10000 },
});
const print = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const finish = async (code) => {
  await client.close().catch(() => {});
  process.exit(code);
};
try {
  if (job.action === "properties") {
    const hub = await client.getEventHubProperties();
    const partitions = [];
    for (const id of hub.partitionIds) partitions.push(await client.getPartitionProperties(id));
    print({ hub, partitions });
    await finish(0);
  }
  const received = [];
  const position = job.position
    ? Object.fromEntries(
        Object.entries(job.position).map(([k, v]) => [k, k === "enqueuedOn" ? new Date(v) : v]),
      )
    : undefined;
  const handlers = {
    processEvents: async (events, context) => {
      for (const e of events) {
        received.push(e);
        print({
          partitionId: context.partitionId,
          body: Buffer.isBuffer(e.body) ? { buffer: e.body.toString("base64") } : e.body,
          properties: e.properties,
          systemProperties: e.systemProperties,
          sequenceNumber: e.sequenceNumber,
          offset: e.offset,
          enqueuedTimeUtc: e.enqueuedTimeUtc,
          messageId: e.messageId,
          contentType: e.contentType,
          correlationId: e.correlationId,
        });
      }
      if (job.count !== undefined && received.length >= job.count) {
        print({ done: true });
        await finish(0);
      }
    },
    processError: async (error, context) => {
      print({
        error: { name: error.name, code: error.code, message: error.message },
        partitionId: context.partitionId,
      });
      if (job.exitOnError !== false) await finish(3);
    },
  };
  const options = { startPosition: position, maxWaitTimeInSeconds: 1, ownerLevel: job.ownerLevel };
  if (job.partitionId !== undefined) client.subscribe(job.partitionId, handlers, options);
  else client.subscribe(handlers, options);
  print({ subscribed: true });
  setTimeout(() => {
    print({ timeout: true, received: received.length });
    finish(4);
  }, job.timeoutMs ?? 20000);
} catch (error) {
  print({ error: { name: error.name, code: error.code, message: error.message } });
  await finish(2);
}
