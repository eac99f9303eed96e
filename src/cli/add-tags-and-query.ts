#!/usr/bin/env node
import { loadServiceConfig, parseInteger, parseName, parseSeconds } from "../config/index.js";
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
  device?: string;
  plant: string;
  region: string;
  connectivity: string;
  pageSize?: string;
  update: boolean;
  wait: string;
  timeout: string;
}

const program = addCommonOptions(
  newProgram(
    "add-tags-and-query",
    "The device twins tutorial's back-end app: prints the registry statistics, tags a device with its location " +
      "(and sets the desired property location), then queries the devices in that plant and those of them " +
      "reporting cellular connectivity.",
  )
    .option(
      "-d, --device <id>",
      "device whose twin is updated (default: IOTHUB_DEVICE_ID, else the DeviceId of IOTHUB_DEVICE_CONNECTION_STRING, else myDeviceId)",
    )
    .option("--plant <name>", "plant written to tags.location.plant and queried", "Redmond43")
    .option("--region <name>", "region written to tags.location.region", "US")
    .option("--connectivity <type>", "connectivity type the second query looks for", "cellular")
    .option("--page-size <n>", "devices per query page, 1 to 1000 (default: the hub's; all pages are read)")
    .option("--no-update", "only query; do not change the twin")
    .addOption(
      numberOption(
        "--wait <seconds>",
        "poll up to this long (0 to 3600) until the queries show the update (Azure's are eventually consistent)",
        "0",
      ),
    )
    .addOption(
      numberOption(
        "--timeout <seconds>",
        "give up on any single call to the hub after this long (0.1 to 3600)",
        "30",
      ),
    ),
).addHelpText(
  "after",
  `
Settings (flags > environment variables > env file > defaults):
  IOTHUB_CONNECTION_STRING         service connection string (a policy with registry read + service connect)
  IOTHUB_DEVICE_ID                 device to tag (optional)
  IOTHUB_DEVICE_CONNECTION_STRING  only its DeviceId is used, when IOTHUB_DEVICE_ID is not set (optional)
  IOTHUB_CA_FILE                   extra CA to trust, for the local hub (optional)

Run it in the project folder (where .env is), after npm install.
Exit codes: 0 success, 1 hub or runtime failure, 2 usage or configuration error.`,
);

function list(ids: string[]): string {
  return ids.length > 0 ? ids.join(", ") : "(none)";
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

await runCli<Flags>(program, async (flags, setContext) => {
  const verbose = flags.verbose === true;
  const log = verbose ? (line: string) => writeErr(`[verbose] ${line}`) : undefined;
  const plant = parseName("--plant", flags.plant, "Redmond43");
  const region = parseName("--region", flags.region, "US");
  const connectivity = parseName("--connectivity", flags.connectivity, "cellular");
  const pageSize =
    flags.pageSize === undefined ? undefined : parseInteger("--page-size", flags.pageSize, 1, 1000);
  const waitSeconds = parseSeconds("--wait", flags.wait, 0, 3600);
  const timeoutSeconds = parseSeconds("--timeout", flags.timeout, 0.1, 3600);

  const config = loadServiceConfig({ envFile: flags.envFile, caFile: flags.caFile, deviceId: flags.device });
  const { connection, deviceId } = config;
  setContext({
    side: "service",
    hostName: connection.hostName,
    variable: "IOTHUB_CONNECTION_STRING",
    deviceId,
    ca: config.ca ? { file: config.ca.file, setting: config.ca.setting } : undefined,
  });
  if (log) {
    logSettings(log, program, config.sources, {
      plant: "--plant",
      region: "--region",
      connectivity: "--connectivity",
      pageSize: "--page-size",
      wait: "--wait",
      timeout: "--timeout",
    });
  }

  const [{ createRegistry }, { addTagsAndQuery }] = await Promise.all([
    import("../sdk/index.js"),
    import("../backend/add-tags-and-query.js"),
  ]);
  const { registry, adapted, close } = await createRegistry(connection, config.ca?.pem);
  log?.(adapted ? "Registry adapted for host:port / CA." : "Registry used as the SDK makes it.");
  let result: Awaited<ReturnType<typeof addTagsAndQuery>>;
  try {
    result = await addTagsAndQuery(registry, {
      deviceId,
      plant,
      region,
      connectivity,
      pageSize,
      update: flags.update,
      waitSeconds,
      timeoutSeconds,
      log,
    });
  } finally {
    close();
  }

  if (flags.json) {
    const output = {
      statistics: result.statistics,
      ...(result.updated
        ? { updated: { deviceId: result.updated.deviceId, version: result.updated.version } }
        : {}),
      plant: result.plant,
      connectivity: result.connectivity,
      inPlant: result.inPlant,
      inPlantCellular: result.inPlantCellular,
      consistent: result.consistent ?? null,
      pages: result.pages,
    };
    process.stdout.write(`${JSON.stringify(output)}\n`);
  } else {
    const s = result.statistics;
    const lines = [
      `Registry statistics: ${plural(s.totalDeviceCount, "device")} (${s.enabledDeviceCount} enabled, ${s.disabledDeviceCount} disabled)`,
    ];
    if (result.updated) {
      lines.push(
        `Updated the twin of ${result.updated.deviceId} to version ${result.updated.version}:`,
        `  tags.location = ${JSON.stringify({ region, plant })}, desired location = ${JSON.stringify(plant)}`,
      );
    }
    lines.push(`Devices in ${plant}: ${list(result.inPlant)}`);
    lines.push(`Devices in ${plant} using ${connectivity} network: ${list(result.inPlantCellular)}`);
    process.stdout.write(`${lines.join("\n")}\n`);
  }
  if (result.consistent === false) {
    writeErr(
      `note: the query results do not show version ${result.updated?.version} of ${deviceId}'s twin yet` +
        `${waitSeconds > 0 ? `, even after waiting ${result.waitedSeconds} s` : ""}. IoT Hub queries are eventually ` +
        `consistent: an update can take seconds to minutes to appear. Run again, or pass --wait ${Math.max(60, waitSeconds * 2)} to poll until it shows.`,
    );
  }
  return 0;
});
