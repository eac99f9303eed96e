#!/usr/bin/env node
import { spawn } from "node:child_process";
import { realpathSync } from "node:fs";
import {
  ConfigError,
  type EventsConfig,
  EXIT_RUNTIME,
  loadEventsConfig,
  parseInteger,
  parseSeconds,
} from "../config/index.js";
import {
  addCommonOptions,
  type CommonFlags,
  logSettings,
  newProgram,
  numberOption,
  runCli,
  writeErr,
} from "./common.js";

interface Flags extends CommonFlags {
  consumerGroup: string;
  device?: string;
  start: string;
  timeout: string;
  count?: string;
}

const program = addCommonOptions(
  newProgram(
    "monitor-events",
    "Prints device-to-cloud messages as they arrive, like `az iot hub monitor-events`: reads the hub's " +
      "Event Hubs-compatible endpoint (every partition) with the Event Hubs SDK, as any back end would.",
  )
    .option("--consumer-group <name>", "consumer group to read as", "$Default")
    .option("--device <id>", "only messages from this device")
    .option(
      "--start <position>",
      "where to start: 'latest' (messages from now on), 'earliest' (everything kept), or a time (ISO 8601)",
      "latest",
    )
    .addOption(
      numberOption("--timeout <seconds>", "stop after this long, 0 to 604800 (0: run until Ctrl-C)", "0"),
    )
    .option("--count <n>", "stop after this many messages, 1 to 1000000000"),
).addHelpText(
  "after",
  `
Settings (flags > environment variables > env file > defaults):
  EVENTHUB_CONNECTION_STRING   the Event Hubs-compatible connection string (local-hub prints it and writes it
                               to its --write-env file; Azure: IoT hub > Hub settings > Built-in endpoints)
  IOTHUB_CA_FILE               extra CA to trust, for the local hub (optional)

Each message: the device, its system and application properties and its body (JSON when it parses, else text,
else base64). With --json: one JSON object per line, shaped like az iot hub monitor-events --output json.
Run it in the project folder (where .env is), after npm install.
Exit codes: 0 success (also when stopped with Ctrl-C, --timeout or --count), 1 hub or runtime failure, 2 usage or configuration error.
(Through npx, the shell shows 130 after Ctrl-C: npx reports the interrupt it received too.)`,
);

/** The Event Hubs SDK has no option for an extra CA: the process trusts it through NODE_EXTRA_CA_CERTS. */
function needsRestartWithCa(config: EventsConfig): boolean {
  if (!config.ca) return false;
  const current = process.env.NODE_EXTRA_CA_CERTS;
  if (!current) return true;
  try {
    return realpathSync(current) !== realpathSync(config.ca.file);
  } catch {
    return true;
  }
}

function restartWithCa(caFile: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      stdio: "inherit",
      env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile },
    });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on("SIGINT", forward);
    process.on("SIGTERM", forward);
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0)));
    child.on("error", () => resolve(1));
  });
}

function parseStart(raw: string): { offset: string } | { enqueuedOn: Date } {
  if (raw === "latest") return { offset: "@latest" };
  if (raw === "earliest") return { offset: "-1" };
  const ms = Date.parse(raw);
  if (!/^\d{4}-\d{2}-\d{2}/.test(raw) || Number.isNaN(ms)) {
    throw new ConfigError(`--start: '${raw}' is not latest, earliest or an ISO 8601 time.`, {
      setting: "--start",
      hint: "For example --start earliest, or --start 2024-05-01T12:00:00Z",
    });
  }
  return { enqueuedOn: new Date(ms) };
}

/** A body as az shows it: parsed JSON stays an object; bytes become text when they are UTF-8, else base64. */
function showBody(body: unknown): unknown {
  if (Buffer.isBuffer(body) || body instanceof Uint8Array) {
    const buffer = Buffer.from(body);
    const text = buffer.toString("utf8");
    if (Buffer.from(text, "utf8").equals(buffer)) {
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
    }
    return { base64: buffer.toString("base64") };
  }
  return body;
}

interface ReceivedEvent {
  body: unknown;
  properties?: Record<string, unknown>;
  systemProperties?: Record<string, unknown>;
  enqueuedTimeUtc: Date;
  sequenceNumber: number;
  offset: string | number;
  messageId?: unknown;
  contentType?: string;
  correlationId?: unknown;
}

function describe(event: ReceivedEvent, partitionId: string) {
  const system: Record<string, unknown> = { ...(event.systemProperties ?? {}) };
  for (const [k, v] of Object.entries(system)) if (v instanceof Date) system[k] = v.toISOString();
  const enqueued = event.enqueuedTimeUtc.toISOString();
  if (typeof system["iothub-enqueuedtime"] === "number")
    system["iothub-enqueuedtime"] = new Date(system["iothub-enqueuedtime"] as number).toISOString();
  return {
    event: {
      origin: String(system["iothub-connection-device-id"] ?? ""),
      module: String(system["iothub-connection-module-id"] ?? ""),
      interface: String(system["iothub-interface-id"] ?? system["dt-dataschema"] ?? ""),
      component: String(system["dt-subject"] ?? ""),
      payload: showBody(event.body),
      properties: { system, application: event.properties ?? {} },
      partition: partitionId,
      sequenceNumber: event.sequenceNumber,
      offset: String(event.offset),
      enqueuedTime: enqueued,
    },
  };
}

function explain(error: unknown, config: EventsConfig): Error {
  const e = error as { code?: string; message?: string; name?: string };
  const where = `${config.host}${config.port ? `:${config.port}` : ""}`;
  const nested = (error as { errors?: Array<{ code?: string }> }).errors?.map((x) => x.code).join(" ") ?? "";
  const text = `${e.code ?? ""} ${e.name ?? ""} ${nested} ${e.message ?? String(error)}`;
  let message = `reading events failed: ${e.message ?? String(error)}`;
  let hint = "Run again with --verbose for details.";
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ServiceCommunicationProblem|operation timeout/i.test(text)) {
    message = `cannot reach the Event Hubs-compatible endpoint at ${where}.`;
    hint =
      "Is the hub running? local-hub serves it over AMQP on its --port + 1 (--amqp-port); check the Endpoint in EVENTHUB_CONNECTION_STRING.";
  } else if (/Unauthorized|unauthorized-access|signature|expired/i.test(text)) {
    message = `the hub refused the key in EVENTHUB_CONNECTION_STRING (policy ${config.keyName}): ${e.message}`;
    hint =
      "Use the Event Hubs-compatible connection string of a policy with the ServiceConnect permission (service or iothubowner).";
  } else if (/certificate|self[- ]signed|CERT_|unable to verify/i.test(text)) {
    message = `the endpoint's TLS certificate is not trusted: ${e.message}`;
    hint = "For the local hub set IOTHUB_CA_FILE (or --ca-file) to its .local-hub/ca.pem.";
  } else if (/could not be found|not-found|MessagingEntityNotFound/i.test(text)) {
    message = e.message ?? "not found";
    hint =
      "Check EntityPath and --consumer-group; local-hub creates consumer groups besides $Default with --consumer-group <name>.";
  }
  return Object.assign(new Error(message), { hint, cause: error });
}

await runCli<Flags>(program, async (flags) => {
  const verbose = flags.verbose === true;
  const config = loadEventsConfig({ envFile: flags.envFile, caFile: flags.caFile });
  const startPosition = parseStart(flags.start);
  const timeoutSeconds = parseSeconds("--timeout", flags.timeout, 0, 7 * 24 * 3600);
  const count =
    flags.count === undefined ? undefined : parseInteger("--count", flags.count, 1, 1_000_000_000);
  if (needsRestartWithCa(config)) return restartWithCa((config.ca as { file: string }).file);
  if (verbose) {
    logSettings((line) => writeErr(`[verbose] ${line}`), program, config.sources, {
      consumerGroup: "--consumer-group",
      device: "--device",
      start: "--start",
      timeout: "--timeout",
      count: "--count",
    });
  }

  const { EventHubConsumerClient } = await import("@azure/event-hubs");
  const client = new EventHubConsumerClient(flags.consumerGroup, config.connectionString, {
    retryOptions: { maxRetries: 1, retryDelayInMs: 500, timeoutInMs: 10_000 },
  });
  const closeClient = () =>
    Promise.race([client.close().catch(() => {}), new Promise((r) => setTimeout(r, 2000).unref())]);
  // The subscription retries failures quietly for ever; asking for the hub's properties first turns an
  // unreachable endpoint, a refused key or a wrong EntityPath into one clear error.
  try {
    const properties = await client.getEventHubProperties();
    if (verbose) writeErr(`[verbose] partitions ${properties.partitionIds.join(", ")}`);
  } catch (error) {
    await closeClient();
    return report(explain(error, config), verbose);
  }
  let seen = 0;
  let finish: (outcome: Error | undefined) => void = () => {};
  const finished = new Promise<Error | undefined>((resolve) => {
    finish = resolve;
  });
  const subscription = client.subscribe(
    {
      processEvents: async (events, context) => {
        for (const event of events as unknown as ReceivedEvent[]) {
          const shown = describe(event, context.partitionId);
          if (flags.device !== undefined && shown.event.origin !== flags.device) continue;
          if (flags.json) process.stdout.write(`${JSON.stringify(shown)}\n`);
          else {
            const e = shown.event;
            process.stdout.write(
              `event from ${e.origin} (partition ${e.partition}, sequence ${e.sequenceNumber}, enqueued ${e.enqueuedTime}):\n` +
                `  properties: ${JSON.stringify(e.properties.application)}\n` +
                `  system:     ${JSON.stringify(e.properties.system)}\n` +
                `  body:       ${typeof e.payload === "string" ? e.payload : JSON.stringify(e.payload)}\n`,
            );
          }
          seen++;
          if (count !== undefined && seen >= count) return finish(undefined);
        }
      },
      processError: async (error) => {
        // The SDK retries what is transient by itself; what reaches here is reported and ends the run.
        finish(explain(error, config));
      },
    },
    { startPosition, maxBatchSize: 100, maxWaitTimeInSeconds: 1 },
  );
  if (!flags.json)
    writeErr(
      `Monitoring ${config.entityPath} (consumer group ${flags.consumerGroup}${flags.device ? `, device ${flags.device}` : ""}) from ${flags.start}. Press Ctrl-C to stop.`,
    );
  process.once("SIGINT", () => finish(undefined));
  process.once("SIGTERM", () => finish(undefined));
  if (timeoutSeconds > 0) setTimeout(() => finish(undefined), timeoutSeconds * 1000).unref();
  const outcome = await finished;
  await Promise.race([subscription.close().catch(() => {}), new Promise((r) => setTimeout(r, 2000).unref())]);
  await closeClient();
  return outcome ? report(outcome, verbose) : 0;
});

function report(error: Error, verbose: boolean): number {
  writeErr(`error: ${error.message}`);
  writeErr(`hint: ${(error as Error & { hint: string }).hint}`);
  if (verbose)
    writeErr(String((error as Error & { cause?: { stack?: string } }).cause?.stack ?? error.stack));
  return EXIT_RUNTIME;
}
