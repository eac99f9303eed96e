#!/usr/bin/env node
import { CommanderError, InvalidArgumentError } from "commander";
import { runLocalHub } from "../hub/command.js";
import { exit, newProgram, numberOption } from "./common.js";

const program = newProgram(
  "local-hub",
  "A local Azure IoT Hub for the device twins tutorial: HTTPS REST and MQTT over TLS on one port.",
)
  .addOption(
    numberOption(
      "-p, --port <port>",
      "TLS port for both protocols, 0 to 65535 (0 picks a free one)",
      "18883",
    ).argParser(parsePort),
  )
  .option("--standard-ports", "serve IoT Hub's standard ports 443 and 8883 instead (HostName=localhost)")
  .option("-d, --data-dir <dir>", "where twins and certificates are kept (one hub per folder)", ".local-hub")
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
  .option("-q, --quiet", "do not log each operation")
  .option("--verbose", "show stack traces on failure")
  .addHelpText(
    "after",
    `
Settings: only these flags (no environment variables, no .env file).
The tools find this hub through .env: IOTHUB_CA_FILE must name the 'trust:' file this hub prints.
Exit codes: 0 stopped with Ctrl-C or SIGTERM, 1 cannot start (port or data folder in use, bad keys file), 2 usage error.
(Through npx, the shell shows 130 after Ctrl-C: npx reports the interrupt it received too.)`,
  );

let parsed = false;
try {
  program.parse();
  parsed = true;
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

if (parsed) {
  const opts = program.opts();
  runLocalHub({ ...opts, port: Number(opts.port) } as Parameters<typeof runLocalHub>[0]).catch(
    (error: unknown) => {
      console.error(`local-hub: ${error instanceof Error ? error.message : String(error)}`);
      if (opts.verbose === true && error instanceof Error && error.stack) console.error(error.stack);
      process.exit(1);
    },
  );
}
