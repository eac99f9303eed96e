import rhea, { type Connection, type Message } from "rhea";
import type { RunningHub } from "../../../src/hub/index.js";

/** A raw rhea client connection to the hub's AMQP port, trusting its CA. */
export function amqpConnect(
  hub: RunningHub,
  options: Partial<rhea.ConnectionOptions> = {},
): Promise<Connection> {
  const container = rhea.create_container();
  return new Promise((resolve, reject) => {
    const connection = container.connect({
      host: "localhost",
      port: hub.amqpPort,
      transport: "tls",
      ca: hub.caPem,
      servername: "localhost",
      reconnect: false,
      ...options,
    } as rhea.ConnectionOptions);
    connection.once("connection_open", () => resolve(connection));
    connection.once("connection_error", (ctx) =>
      reject(ctx.connection.error ?? new Error("connection error")),
    );
    connection.once("disconnected", (ctx) => reject(ctx.error ?? new Error("disconnected")));
    connection.on("error", () => {});
  });
}

/** One request on a request/response node ($cbs, $management): resolves with the answer message. */
export function request(connection: Connection, node: string, message: Message): Promise<Message> {
  const replyTo = `reply-${Math.random().toString(16).slice(2)}`;
  return new Promise((resolve, reject) => {
    const receiver = connection.open_receiver({ source: { address: node }, target: { address: replyTo } });
    const sender = connection.open_sender({ target: { address: node } });
    const timer = setTimeout(() => reject(new Error("no answer")), 5000);
    receiver.on("message", (ctx) => {
      clearTimeout(timer);
      resolve(ctx.message as Message);
      sender.close();
      receiver.close();
    });
    receiver.on("receiver_open", () => {
      sender.send({ message_id: "m1", reply_to: replyTo, ...message });
    });
    sender.on("sender_error", (ctx) => reject(ctx.sender.error));
  });
}
