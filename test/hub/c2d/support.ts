import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Client as DeviceClient, type Message } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import { eventually } from "../support.js";

const DRIVER = fileURLToPath(new URL("./service-driver.mjs", import.meta.url));

export interface FeedbackRecord {
  originalMessageId: string;
  deviceId: string;
  deviceGenerationId: string;
  enqueuedTimeUtc: string;
  statusCode: string;
  description: string;
}

export interface ServiceAnswer {
  ok: boolean;
  result?: unknown;
  error?: { name: string; message: string; cause?: string; condition?: string };
}

/** The unmodified azure-iothub service Client in a child process (service-driver.mjs) trusting the hub's CA. */
export class ServiceClient {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly waiting = new Map<number, (a: ServiceAnswer) => void>();
  private nextId = 1;
  readonly feedback: Array<{ feedback: FeedbackRecord[]; contentType?: string }> = [];
  readonly errors: string[] = [];

  constructor(connectionString: string, caFile: string) {
    this.child = spawn(process.execPath, [DRIVER, connectionString], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile, DEBUG: "" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let buffer = "";
    this.child.stdout.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("utf8");
      for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
        const line = JSON.parse(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        if (line.feedback) this.feedback.push(line);
        else if (line.feedbackError) this.errors.push(JSON.stringify(line.feedbackError));
        else this.waiting.get(line.id)?.(line);
      }
    });
    this.child.stderr.on("data", (chunk: Buffer) => this.errors.push(chunk.toString("utf8")));
  }

  call(op: string, args: Record<string, unknown> = {}): Promise<ServiceAnswer> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${op}: no answer in 30 s`)), 30_000);
      this.waiting.set(id, (a) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(a);
      });
      this.child.stdin.write(`${JSON.stringify({ id, op, ...args })}\n`);
    });
  }

  async send(deviceId: string, message: Record<string, unknown>): Promise<ServiceAnswer> {
    return this.call("send", { deviceId, message });
  }

  /** Every feedback record received so far. */
  records(): FeedbackRecord[] {
    return this.feedback.flatMap((f) => f.feedback);
  }

  async waitRecords(n: number, ms = 15_000): Promise<FeedbackRecord[]> {
    return eventually(() => (this.records().length >= n ? this.records() : undefined), ms);
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** An azure-iot-device client over MQTT that completes each message and records it. */
export async function receivingDevice(
  connectionString: string,
  caPem: string,
): Promise<{ client: DeviceClient; messages: Message[] }> {
  const client = DeviceClient.fromConnectionString(connectionString, Mqtt);
  await client.setOptions({ ca: caPem });
  const messages: Message[] = [];
  client.on("message", (msg: Message) => {
    messages.push(msg);
    client.complete(msg, () => {});
  });
  await client.open();
  // The listener makes the SDK subscribe, but open() does not wait for the SUBACK; a message sent before the
  // hub has the subscription would not be for the device. Enabling C2D again resolves on a SUBACK.
  await new Promise<void>((resolve, reject) =>
    (client as unknown as { _enableC2D(cb: (e?: Error) => void): void })._enableC2D((e) =>
      e ? reject(e) : resolve(),
    ),
  );
  return { client, messages };
}
