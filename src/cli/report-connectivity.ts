#!/usr/bin/env node
import { loadDeviceConfig, parseInteger, parseName, parseSeconds } from "../config/index.js";
import type { DesiredUpdate } from "../device/report-connectivity.js";
import { TakeoverDetector } from "../device/takeover.js";
import { describeFailure, TakenOverError, TimeoutError } from "../sdk/errors.js";
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
  type: string;
  once?: boolean;
  send: string;
  timeout: string;
}

const program = addCommonOptions(
  newProgram(
    "report-connectivity",
    "The device twins tutorial's device app: connects as the device over MQTT, prints the desired properties, " +
      "reports { connectivity: { type } } and then prints each desired-property update until Ctrl-C or SIGTERM.",
  )
    .option("--type <name>", "connectivity type to report", "cellular")
    .option("--once", "exit right after the hub acknowledges the report")
    .addOption(
      numberOption(
        "--send <count>",
        "after the report, send this many telemetry messages (0 to 1000; read them with monitor-events)",
        "0",
      ),
    )
    .addOption(
      numberOption(
        "--timeout <seconds>",
        "give up on connecting, or on an acknowledgement, after this long (0.1 to 3600)",
        "30",
      ),
    ),
).addHelpText(
  "after",
  `
Settings (flags > environment variables > env file > defaults):
  IOTHUB_DEVICE_CONNECTION_STRING  the device's connection string
  IOTHUB_CA_FILE                   extra CA to trust, for the local hub (optional)

With --json: one JSON object (with --once), or one JSON object per line: the report, each message sent, then each
desired update.
Run it in the project folder (where .env is), after npm install.
Exit codes: 0 success (also when stopped with Ctrl-C or SIGTERM), 1 hub or runtime failure, 2 usage or configuration error.
(Through npx, the shell shows 130 after Ctrl-C: npx reports the interrupt it received too.)`,
);

function show(properties: Record<string, unknown>): string {
  return Object.keys(properties).length > 0 ? JSON.stringify(properties) : "(none)";
}

await runCli<Flags>(program, async (flags, setContext) => {
  const verbose = flags.verbose === true;
  const log = verbose ? (line: string) => writeErr(`[verbose] ${line}`) : undefined;
  const type = parseName("--type", flags.type, "cellular");
  const timeoutSeconds = parseSeconds("--timeout", flags.timeout, 0.1, 3600);
  const sendCount = parseInteger("--send", flags.send, 0, 1000);
  const config = loadDeviceConfig({ envFile: flags.envFile, caFile: flags.caFile });
  const { connection } = config;
  const context = {
    side: "device" as const,
    hostName: connection.hostName,
    variable: "IOTHUB_DEVICE_CONNECTION_STRING",
    deviceId: connection.deviceId,
    ca: config.ca ? { file: config.ca.file, setting: config.ca.setting } : undefined,
  };
  setContext(context);
  if (log)
    logSettings(log, program, config.sources, { type: "--type", send: "--send", timeout: "--timeout" });

  // Stop on Ctrl-C / SIGTERM, also while still connecting; a second signal leaves at once.
  let stop: (reason: "signal" | Error) => void = () => {};
  const stopped = new Promise<"signal" | Error>((resolve) => {
    stop = resolve;
  });
  let signalled = false;
  const onSignal = () => {
    if (signalled) process.exit(130);
    signalled = true;
    stop("signal");
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const [{ createDeviceClient }, { reportConnectivity }] = await Promise.all([
    import("../sdk/index.js"),
    import("../device/report-connectivity.js"),
  ]);
  const client = await createDeviceClient(connection, config.ca?.pem);
  const print = (line: string) => process.stdout.write(`${line}\n`);
  const onDesiredUpdate = (update: DesiredUpdate) => {
    if (flags.json)
      print(JSON.stringify({ event: "desired", version: update.version ?? null, patch: update.patch }));
    else
      print(`Desired properties changed (version ${update.version ?? "?"}): ${JSON.stringify(update.patch)}`);
  };

  let lastWarning = { message: "", at: 0 };
  // Two apps with the same device ID knock each other off: detect it and say so instead of fighting for ever.
  const takeover = new TakeoverDetector();
  let warned = false;
  const starting = reportConnectivity(client, {
    deviceId: connection.deviceId,
    type,
    once: flags.once === true,
    timeoutSeconds,
    onDesiredUpdate,
    onConnectionLost: (error) => stop(error),
    onRetry: (error) => {
      if (takeover.dropped()) {
        stop(new TakenOverError(takeover.recentDrops, 30));
        return;
      }
      // One warning per cause and half-minute: the SDK retries with back-off for up to four minutes.
      const { message } = describeFailure(error, context);
      const now = Date.now();
      if (message === lastWarning.message && now - lastWarning.at < 30_000) return;
      lastWarning = { message, at: now };
      writeErr(`warning: ${message} Reconnecting...`);
      warned = true;
    },
    onReconnected: () => {
      takeover.connected();
      if (warned) writeErr("Reconnected.");
      warned = false;
    },
    log,
  });
  let first: Awaited<typeof starting> | "signal" | Error;
  try {
    first = await Promise.race([starting, stopped]);
  } catch (error) {
    // A start-up that stalled after the connection was closed right after connecting: the other client with
    // this device ID interrupted it (the SDK does not always resume an interrupted twin request).
    if (error instanceof TimeoutError && takeover.recentDrops > 0)
      throw new TakenOverError(takeover.recentDrops, 30, error);
    throw error;
  }
  if (first === "signal") {
    // Stopped before the report was acknowledged: close whatever was opened and leave quietly.
    starting.then((session) => session.close()).catch(() => {});
    await Promise.race([starting.catch(() => {}), new Promise((r) => setTimeout(r, 2000))]);
    return 0;
  }
  if (first instanceof Error) throw first;
  const session = first;

  const summary = {
    deviceId: session.deviceId,
    desired: session.desired,
    reported: session.reported,
    reportedVersion: session.reportedVersion ?? null,
  };
  if (flags.json) {
    if (!flags.once) print(JSON.stringify({ event: "reported", ...summary }));
  } else {
    print(`Connected to ${connection.hostName} as ${session.deviceId}.`);
    print(`Desired properties: ${show(session.desired)}`);
    print(
      `Reported connectivity.type = ${type} (reported properties version ${session.reportedVersion ?? "?"}).`,
    );
  }
  // Device-to-cloud messages, one at a time, each acknowledged by the hub before the next.
  for (let n = 1; n <= sendCount; n++) {
    const body = { connectivity: type, message: n };
    await session.sendTelemetry(body, { source: "report-connectivity" });
    if (flags.json && !flags.once) print(JSON.stringify({ event: "sent", body }));
    else if (!flags.json) print(`Sent telemetry message ${n} of ${sendCount}: ${JSON.stringify(body)}`);
  }
  if (flags.json && flags.once)
    print(JSON.stringify(sendCount > 0 ? { ...summary, telemetrySent: sendCount } : summary));
  if (flags.once) {
    await session.close();
    return 0;
  }
  if (!flags.json) print("Waiting for desired property updates. Press Ctrl-C to stop.");

  const reason = await stopped;
  await session.close();
  if (reason instanceof Error) throw reason;
  if (!flags.json) print("Disconnected.");
  return 0;
});
