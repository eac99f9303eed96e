// The unmodified azure-iothub service Client, run as a child process so NODE_EXTRA_CA_CERTS can make it trust
// the hub's CA (its AMQP transport has no CA option). Reads one JSON command per stdin line and prints one JSON
// line per answer ({id, ok, result} or {id, ok:false, error:{name, message}}) and per feedback message
// ({feedback: records, contentType}). Commands: open, send {deviceId, message}, sendMany {deviceId,
// count, prefix}, feedback (attach the feedback receiver), close.
import { createInterface } from "node:readline";
import common from "azure-iot-common";
import iothub from "azure-iothub";

const { Message } = common;

const client = iothub.Client.fromConnectionString(process.argv[2]);
const print = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const failure = (error) => ({
  name: error?.constructor?.name ?? "Error",
  message: String(error?.message ?? error),
  // The SDK keeps what the hub answered on the error it raises.
  cause: error?.amqpError?.constructor?.name,
  condition: error?.amqpError?.condition,
});

function toMessage(m) {
  const message = new Message(m.data ?? "");
  if (m.messageId !== undefined) message.messageId = m.messageId;
  if (m.correlationId !== undefined) message.correlationId = m.correlationId;
  if (m.ack !== undefined) message.ack = m.ack;
  // Milliseconds since the epoch: the rhea inside azure-iothub encodes absolute-expiry-time from a number only.
  if (m.expiryTimeUtc !== undefined) message.expiryTimeUtc = m.expiryTimeUtc;
  if (m.contentType !== undefined) message.contentType = m.contentType;
  if (m.contentEncoding !== undefined) message.contentEncoding = m.contentEncoding;
  for (const [k, v] of Object.entries(m.properties ?? {})) message.properties.add(k, v);
  return message;
}

async function run(command) {
  switch (command.op) {
    case "open":
      await client.open();
      return "open";
    case "send":
      await client.send(command.deviceId, toMessage(command.message));
      return "sent";
    case "sendMany": {
      // In parallel, as a service sending to many devices would; resolves when every one was accepted.
      const started = Date.now();
      await Promise.all(
        command.deviceIds.map((deviceId, i) =>
          client.send(
            deviceId,
            toMessage({ data: `${command.prefix}-${i}`, messageId: `${command.prefix}-${i}` }),
          ),
        ),
      );
      return { ms: Date.now() - started };
    }
    case "feedback": {
      // The promise resolves with { result: the receiver, message } (the SDK's ResultWithIncomingMessage).
      const { result: receiver } = await client.getFeedbackReceiver();
      receiver.on("message", (msg) => {
        print({
          feedback: JSON.parse(msg.getData().toString("utf8")),
          contentType: msg.contentType,
        });
      });
      receiver.on("errorReceived", (error) => print({ feedbackError: failure(error) }));
      receiver.on("error", (error) => print({ feedbackError: failure(error) }));
      return "attached";
    }
    case "close":
      await client.close();
      setImmediate(() => process.exit(0));
      return "closed";
    default:
      throw new Error(`unknown op ${command.op}`);
  }
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const command = JSON.parse(line);
  run(command).then(
    (result) => print({ id: command.id, ok: true, result }),
    (error) => print({ id: command.id, ok: false, error: failure(error) }),
  );
});
lines.on("close", () => process.exit(0));
