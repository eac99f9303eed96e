#!/usr/bin/env node
import { Command, InvalidArgumentError } from "commander";
import { runLocalHub } from "../hub/command.js";
import { parseTier, TIERS, type Tier } from "../hub/throttle/index.js";

/** Upper bound of --query-delay: a day. A longer lag would only hide every write from queries. */
const MAX_QUERY_DELAY_MS = 86_400_000;

const program = new Command("local-hub")
  .description(
    "A local Azure IoT Hub for the device twins tutorial: HTTPS REST and MQTT over TLS on one port",
  )
  .option("-p, --port <port>", "TLS port for both protocols (0 picks a free one)", parsePort, 18883)
  .option("--standard-ports", "serve IoT Hub's standard ports 443 and 8883 instead (HostName=localhost)")
  .option("-d, --data-dir <dir>", "where twins and certificates are kept", ".local-hub")
  .option("--in-memory", "keep nothing on disk (twins are lost on stop)")
  .option("--write-env <file>", "once listening, write a dotenv file for this hub and the tutorial device")
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
  .option("-q, --quiet", "do not log each operation")
  .option("--verbose", "show stack traces on failure")
  .version("0.1.0")
  .showHelpAfterError("(run local-hub --help for usage)");

program.exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
program.parse();

runLocalHub(program.opts()).catch((error: unknown) => {
  const verbose = program.opts().verbose === true;
  console.error(`local-hub: ${error instanceof Error ? error.message : String(error)}`);
  if (verbose && error instanceof Error && error.stack) console.error(error.stack);
  process.exit(1);
});

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535)
    throw new InvalidArgumentError("use a whole number from 0 to 65535");
  return port;
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
