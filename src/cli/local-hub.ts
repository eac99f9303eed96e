#!/usr/bin/env node
import { type Command, CommanderError, InvalidArgumentError } from "commander";
import { caCommand, deviceCommand, selfSignedCommand } from "../hub/cert-command.js";
import { runLocalHub } from "../hub/command.js";
import { parseTier, TIERS, type Tier } from "../hub/throttle/index.js";
import { DEFAULT_HUB_DATA_DIR, DEFAULT_HUB_PORT } from "../shared/rules.js";
import { exit, newProgram, numberOption } from "./common.js";

/** Upper bound of --query-delay: a day. A longer lag would only hide every write from queries. */
const MAX_QUERY_DELAY_MS = 86_400_000;

const program = newProgram(
  "local-hub",
  "A local Azure IoT Hub for the device twins tutorial: HTTPS REST and MQTT over TLS on one port.",
)
  .addOption(
    numberOption(
      "-p, --port <port>",
      "TLS port for both protocols, 0 to 65535 (0 picks a free one)",
      String(DEFAULT_HUB_PORT),
    ).argParser(parsePort),
  )
  .option("--standard-ports", "serve IoT Hub's standard ports 443 and 8883 instead (HostName=localhost)")
  .option(
    "-d, --data-dir <dir>",
    "where twins and certificates are kept (one hub per folder)",
    DEFAULT_HUB_DATA_DIR,
  )
  .option("--in-memory", "keep nothing on disk (twins are lost on stop)")
  .option(
    "--host-name <name>",
    "host name in connection strings and the certificate; must resolve to this machine",
    "localhost",
  )
  .option(
    "--write-env <file>",
    "once listening, write a dotenv file for this hub and the tutorial device (mode 0600)",
  )
  .option(
    "--keys-file <file>",
    "JSON file with your own shared access policies instead of the development ones",
  )
  .option(
    "--query-delay <ms>",
    "query results lag writes by this many milliseconds, as IoT Hub's eventually consistent queries can (GET of one twin stays current); default 0",
    parseDelay,
  )
  .option(
    "--throttle <tier>",
    `enforce IoT Hub's throttles of one unit of this tier (${TIERS.join(", ")}): twin reads and updates, queries, registry operations, new connections; over quota answers 429 ThrottlingException`,
    parseThrottle,
  )
  .option(
    "--ca-cert <file>",
    "PEM file of a CA certificate to register for X.509 CA device authentication (repeatable; not kept: give it on every start)",
    (value: string, list: string[]) => [...list, value],
    [] as string[],
  )
  .option("-q, --quiet", "do not log each operation")
  .option("--verbose", "show stack traces on failure")
  .addHelpText(
    "after",
    `
X.509 devices: 'local-hub cert --help' makes device certificates (self-signed, or a CA and certificates it signs).
Settings: only these flags (no environment variables, no .env file).
The tools find this hub through .env: IOTHUB_CA_FILE must name the 'trust:' file this hub prints.
Exit codes: 0 stopped with Ctrl-C or SIGTERM, 1 cannot start (port or data folder in use, bad keys file), 2 usage error.
(Through npx, the shell shows 130 after Ctrl-C: npx reports the interrupt it received too.)`,
  );

let parsed = false;
program.action(() => {
  parsed = true;
});

/** Work a `cert` subcommand started; the process exits once it settles. */
let certWork: Promise<void> | undefined;
const certOptions = (command: Command) =>
  command
    .option("-o, --out <dir>", "folder to write the certificate and key to (created if missing)", ".")
    .addOption(numberOption("--days <days>", "validity in days from now", "365").argParser(parseDays))
    .option("--verbose", "show stack traces on failure");
const cert = program
  .command("cert")
  .description(
    "make certificates for X.509 device authentication with this hub (development only: keys are not encrypted)",
  );
certOptions(
  cert
    .command("self-signed")
    .description(
      "a self-signed device certificate; prints the thumbprints to register on a selfSigned device",
    )
    .requiredOption("--device-id <id>", "the device ID (the certificate's CN)"),
).action((opts) => {
  certWork = selfSignedCommand({ ...opts, days: Number(opts.days) });
});
certOptions(
  cert
    .command("ca")
    .description("a device CA (device-ca.pem, device-ca-key.pem) to register with 'local-hub --ca-cert'")
    .option("--name <name>", "the CA's common name", "local-hub device CA"),
).action((opts) => {
  certWork = caCommand({ ...opts, days: Number(opts.days) });
});
certOptions(
  cert
    .command("device")
    .description("a device certificate (CN = device ID) signed by your CA, for a certificateAuthority device")
    .requiredOption("--device-id <id>", "the device ID (the certificate's CN)")
    .requiredOption("--ca <file>", "the CA certificate (from 'local-hub cert ca')")
    .requiredOption("--ca-key <file>", "the CA's private key"),
).action((opts) => {
  certWork = deviceCommand({ ...opts, days: Number(opts.days) });
});
for (const command of [cert, ...cert.commands]) {
  command.exitOverride().showHelpAfterError("(run with --help for usage)").allowExcessArguments(false);
}

try {
  program.parse();
} catch (error) {
  // commander has printed the usage error (or the help, or the version).
  if (!(error instanceof CommanderError)) throw error;
  exit(error.exitCode === 0 ? 0 : 2);
}

function parsePort(value: string): string {
  if (!/^\d+$/.test(value) || Number(value) > 65535)
    throw new InvalidArgumentError("use a whole number from 0 to 65535");
  return value;
}

if (certWork) {
  const verbose = process.argv.includes("--verbose");
  certWork.then(
    () => exit(0),
    (error: unknown) => {
      console.error(`local-hub cert: ${error instanceof Error ? error.message : String(error)}`);
      if (verbose && error instanceof Error && error.stack) console.error(error.stack);
      exit(1);
    },
  );
} else if (parsed) {
  const opts = program.opts();
  runLocalHub({ ...opts, port: Number(opts.port) } as Parameters<typeof runLocalHub>[0]).catch(
    (error: unknown) => {
      console.error(`local-hub: ${error instanceof Error ? error.message : String(error)}`);
      if (opts.verbose === true && error instanceof Error && error.stack) console.error(error.stack);
      process.exit(1);
    },
  );
}

function parseDays(value: string): string {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 36500)
    throw new InvalidArgumentError("use a whole number of days from 1 to 36500");
  return value;
}

function parseDelay(value: string): number {
  const ms = Number(value);
  if (!/^\d+$/.test(value) || ms > MAX_QUERY_DELAY_MS)
    throw new InvalidArgumentError(`use a whole number of milliseconds from 0 to ${MAX_QUERY_DELAY_MS}`);
  return ms;
}

function parseThrottle(value: string): Tier {
  const tier = parseTier(value);
  if (!tier) throw new InvalidArgumentError(`unknown tier; use one of ${TIERS.join(", ")}`);
  return tier;
}
