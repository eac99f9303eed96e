import type { Delivery, EventContext, Message, Receiver } from "rhea";
import { type AmqpServer, refuse, rhea } from "../amqp/server.js";
import { AMQP } from "../protocol.js";
import type { FeedbackQueue } from "./feedback.js";
import {
  ACK_MODES,
  type AckMode,
  type C2dProperties,
  deviceOfAddress,
  MAX_MESSAGE_BYTES,
  messageSize,
} from "./message.js";
import { type CloudToDeviceQueue, MAX_QUEUE_DEPTH } from "./queue.js";

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * The service-facing cloud-to-device endpoints on the AMQP routing table ("Send cloud-to-device messages from an
 * IoT hub": "You send cloud-to-device messages through a service-facing endpoint, /messages/devicebound";
 * feedback through "/messages/servicebound/feedback"). Both need ServiceConnect ("Control access to IoT Hub":
 * ServiceConnect "grants access to cloud service-facing communication and monitoring endpoints ... send
 * cloud-to-device messages, and retrieve the corresponding delivery acknowledgments"), from a `$cbs` put-token.
 *
 * Each message sent is settled only once decided: accepted after it is stored in the device's queue, or
 * rejected with the condition azure-iothub turns into its typed error:
 * - `amqp:not-found` (DeviceNotFoundError): the `to` device is not registered;
 * - `amqp:resource-limit-exceeded` (DeviceMaximumQueueDepthExceededError): its queue holds 50 messages
 *   ("An error occurs if you try to send more messages to the same device");
 * - `amqp:link:message-size-exceeded` (MessageTooLargeError): over 64 KB ("IoT Hub quotas and throttling");
 * - `com.microsoft:argument-error` (ArgumentError): no usable `to`, or an `iothub-ack` outside none, positive,
 *   negative, full.
 */
export function serveCloudToDevice(opts: {
  server: AmqpServer;
  queue: CloudToDeviceQueue;
  feedback: FeedbackQueue;
  deviceExists: (deviceId: string) => boolean;
  log: (line: string) => void;
}): void {
  const { server, queue, feedback, deviceExists, log } = opts;
  const announced = new WeakSet<object>();

  server.route(new RegExp(`^${escapeRegExp(AMQP.deviceboundNode)}$`, "i"), {
    incoming(receiver, { peer, address }) {
      const granted = peer.authorize(address, "ServiceConnect");
      if (!granted.ok) {
        log(`AMQP ${peer.id} sending to ${address} refused: ${granted.reason}`);
        return refuse(receiver, AMQP.errors.unauthorized, granted.reason);
      }
      peer.keepAuthorized(receiver, address, "ServiceConnect");
      settleManually(receiver);
      capDeliveries(receiver, MAX_DELIVERY_BYTES, () => {
        log(`AMQP ${peer.id} link to ${address} closed: a message of more than ${MAX_DELIVERY_BYTES} bytes`);
        refuse(
          receiver,
          AMQP.errors.messageSizeExceeded,
          `cloud-to-device messages are at most ${MAX_MESSAGE_BYTES} bytes`,
        );
      });
      // Once per connection: azure-iothub may attach a link per concurrent send until its first one is open.
      if (!announced.has(peer)) {
        announced.add(peer);
        log(`AMQP ${peer.id} sends cloud-to-device messages as ${granted.name}`);
      }
      receiver.on("message", (ctx: EventContext) => {
        const delivery = ctx.delivery as Delivery;
        const reject = (condition: string, description: string) => {
          delivery.reject({ condition, description });
        };
        try {
          const message = ctx.message as Message;
          const to = message.to === undefined ? "" : String(message.to);
          const deviceId = deviceOfAddress(to);
          if (deviceId === undefined)
            return reject(
              AMQP.errors.argument,
              `'to' must be /devices/{deviceId}/messages/devicebound (got '${to.slice(0, 200)}')`,
            );
          const app: Record<string, string | null> = {};
          for (const [k, v] of Object.entries(
            (message.application_properties ?? {}) as Record<string, unknown>,
          ))
            app[k] = v === null || v === undefined ? null : String(v);
          const ackText = (app[AMQP.ackProperty] ?? "none").toLowerCase();
          if (!(ACK_MODES as readonly string[]).includes(ackText))
            return reject(
              AMQP.errors.argument,
              `iothub-ack must be one of ${ACK_MODES.join(", ")} (got '${app[AMQP.ackProperty]}')`,
            );
          const props: C2dProperties = { to, app };
          const id = idText(message.message_id);
          if (id !== undefined) props.messageId = id;
          const cid = idText(message.correlation_id);
          if (cid !== undefined) props.correlationId = cid;
          if (message.user_id !== undefined)
            props.userId = Buffer.from(message.user_id as never).toString("utf8");
          const expiry = message.absolute_expiry_time;
          if (expiry !== undefined && expiry !== null) {
            const ms = expiry instanceof Date ? expiry.getTime() : Number(expiry);
            if (Number.isFinite(ms)) props.expiry = ms;
          }
          if (message.content_type !== undefined) props.contentType = String(message.content_type);
          if (message.content_encoding !== undefined)
            props.contentEncoding = String(message.content_encoding);
          const body = bodyBytes(message.body);
          const size = messageSize(props, body);
          if (size > MAX_MESSAGE_BYTES)
            return reject(
              AMQP.errors.messageSizeExceeded,
              `The message is ${size} bytes: cloud-to-device messages are at most ${MAX_MESSAGE_BYTES} bytes`,
            );
          if (!deviceExists(deviceId))
            return reject(AMQP.errors.notFound, `Device '${deviceId}' is not registered in this hub`);
          const stored = queue.enqueue(deviceId, props, ackText as AckMode, body);
          if (stored === "full")
            return reject(
              AMQP.errors.resourceLimit,
              `Device '${deviceId}' already has ${MAX_QUEUE_DEPTH} messages pending (DeviceMaximumQueueDepthExceeded): wait for the device to take them`,
            );
          stored.then(
            () => delivery.accept(),
            (error: unknown) => {
              log(`AMQP ${peer.id} storing a cloud-to-device message failed: ${(error as Error)?.message}`);
              reject(AMQP.errors.internal, "hub error");
            },
          );
        } catch (error) {
          log(`AMQP ${peer.id} cloud-to-device message failed: ${(error as Error)?.stack ?? error}`);
          reject(AMQP.errors.internal, "hub error");
        }
      });
    },
  });

  server.route(new RegExp(`^${escapeRegExp(AMQP.feedbackNode)}$`, "i"), {
    outgoing(sender, { peer, address }) {
      const granted = peer.authorize(address, "ServiceConnect");
      if (!granted.ok) {
        log(`AMQP ${peer.id} reading ${address} refused: ${granted.reason}`);
        return refuse(sender, AMQP.errors.unauthorized, granted.reason);
      }
      peer.keepAuthorized(sender, address, "ServiceConnect");
      log(`AMQP ${peer.id} reads cloud-to-device feedback as ${granted.name}`);
      feedback.attach(sender, peer);
    },
  });
}

/**
 * The most bytes of one encoded message the hub assembles: well above a 64 KB message with its properties (which
 * is refused with a rejected outcome after it arrives), far below what would weigh on the hub's memory.
 */
const MAX_DELIVERY_BYTES = 1024 * 1024;

/**
 * rhea assembles a message sent over many transfer frames in memory before any event, without a bound. Past
 * `limit` bytes this link is refused (`over`) and the rest of that message is dropped as it arrives; what rhea
 * then assembles does not decode, which ends the connection (a protocol error), so nothing of it is kept.
 */
function capDeliveries(receiver: Receiver, limit: number, over: () => void): void {
  let current: { frames?: Buffer[] } | undefined;
  let refused = false;
  Object.defineProperty(receiver, "_incomplete", {
    configurable: true,
    get: () => current,
    set: (delivery: { frames?: Buffer[] } | undefined) => {
      current = delivery;
      const frames = delivery?.frames;
      if (!Array.isArray(frames) || Object.hasOwn(frames, "push")) return;
      let bytes = frames.reduce((n, f) => n + (f?.length ?? 0), 0);
      const push = frames.push.bind(frames);
      Object.defineProperty(frames, "push", {
        value: (...items: Buffer[]) => {
          for (const f of items) bytes += f?.length ?? 0;
          if (bytes <= limit) return push(...items);
          if (!refused) {
            refused = true;
            over();
          }
          return frames.length;
        },
      });
    },
  });
}

/**
 * rhea accepts every incoming message as it arrives unless told otherwise, and only lets a server's receiver
 * inherit the connection's options; this link must settle each message itself, after it is stored or refused.
 */
function settleManually(receiver: Receiver): void {
  const observers = (receiver as unknown as { observers: NodeJS.EventEmitter }).observers;
  const autoAccept = observers
    ?.listeners("message")
    .find((l) => (l as { name?: string }).name === "auto_accept");
  if (!autoAccept) throw new Error("rhea's auto-accept could not be turned off for this link");
  observers.removeListener("message", autoAccept as (...args: unknown[]) => void);
}

/** Message and correlation ids as IoT Hub carries them: text, or a UUID (azure-iothub sends UUID-shaped ids as uuid). */
function idText(id: unknown): string | undefined {
  if (id === undefined || id === null) return undefined;
  if (Buffer.isBuffer(id) && id.length === 16) return rhea().uuid_to_string(id);
  if (Buffer.isBuffer(id)) return id.toString("utf8");
  return String(id);
}

function bodyBytes(body: unknown): Buffer {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === "string") return Buffer.from(body, "utf8");
  const content = (body as { content?: unknown }).content;
  if (Buffer.isBuffer(content)) return content;
  if (typeof content === "string") return Buffer.from(content, "utf8");
  return Buffer.from(JSON.stringify(content ?? body), "utf8");
}
