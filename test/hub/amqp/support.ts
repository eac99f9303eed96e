import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
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

/** What consumer.mjs printed: events, errors and markers, one JSON object per line. */
export interface ConsumerRun {
  code: number | null;
  lines: Array<Record<string, unknown>>;
  events: Array<Record<string, unknown> & { sequenceNumber: number; offset: string; partitionId: string }>;
  error?: { name: string; code?: string; message: string };
}

/**
 * Runs the unmodified @azure/event-hubs consumer (test/hub/amqp/consumer.mjs) in a child process that
 * trusts the hub's CA through NODE_EXTRA_CA_CERTS. `onLine` sees each line as it comes.
 */
export function consume(
  caFile: string,
  job: Record<string, unknown>,
  onLine?: (line: Record<string, unknown>) => void,
): Promise<ConsumerRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CONSUMER, JSON.stringify(job)], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const lines: Array<Record<string, unknown>> = [];
    let buffer = "";
    child.stdout.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("utf8");
      let nl = buffer.indexOf("\n");
      while (nl >= 0) {
        const line = JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>;
        buffer = buffer.slice(nl + 1);
        lines.push(line);
        onLine?.(line);
        nl = buffer.indexOf("\n");
      }
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code === 1) return reject(new Error(`consumer crashed: ${stderr}`));
      const events = lines.filter((l) => "sequenceNumber" in l) as ConsumerRun["events"];
      const error = lines.find((l) => "error" in l)?.error as ConsumerRun["error"];
      resolve({ code, lines, events, error });
    });
  });
}

const CONSUMER = fileURLToPath(new URL("./consumer.mjs", import.meta.url));
