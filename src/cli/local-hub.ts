#!/usr/bin/env node
import { Command, InvalidArgumentError } from "commander";
import { runLocalHub } from "../hub/command.js";

const program = new Command("local-hub")
  .description(
    "A local Azure IoT Hub for the device twins tutorial: HTTPS REST and MQTT over TLS on one port",
  )
  .option("-p, --port <port>", "TLS port for both protocols (0 picks a free one)", parsePort, 18883)
  .option(
    "--amqp-port <port>",
    "TLS port of the AMQP endpoint (Event Hubs-compatible endpoint); default --port + 1",
    parsePort,
  )
  .option(
    "--standard-ports",
    "serve IoT Hub's standard ports 443, 8883 and 5671 (AMQP) instead (HostName=localhost)",
  )
  .option(
    "--retention <hours>",
    "how long device-to-cloud messages are kept (IoT Hub's default: 24)",
    parseHours,
  )
  .option(
    "--partitions <count>",
    "partitions of the Event Hubs-compatible endpoint when it is created (2 to 128, default 4)",
    parsePartitions,
  )
  .option(
    "--consumer-group <name>",
    "a consumer group besides $Default (repeat for more)",
    (value: string, previous: string[] = []) => [...previous, parseGroup(value)],
  )
  .option("-d, --data-dir <dir>", "where twins and certificates are kept", ".local-hub")
  .option("--in-memory", "keep nothing on disk (twins are lost on stop)")
  .option("--write-env <file>", "once listening, write a dotenv file for this hub and the tutorial device")
  .option(
    "--keys-file <file>",
    "JSON file with your own shared access policies instead of the development ones",
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

function parseHours(value: string): number {
  const hours = Number(value);
  // IoT Hub keeps device-to-cloud messages 1 to 7 days (Standard tier); locally any span from a minute is allowed.
  if (!/^\d+(\.\d+)?$/.test(value) || hours <= 0 || hours > 24 * 90)
    throw new InvalidArgumentError("use a number of hours above 0 and at most 2160 (90 days)");
  return hours;
}

function parsePartitions(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 2 || n > 128)
    throw new InvalidArgumentError("use a whole number from 2 to 128 (IoT Hub's range)");
  return n;
}

/** Event Hubs consumer group names: letters, digits, periods, hyphens and underscores, 1 to 50 characters. */
function parseGroup(value: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$/.test(value))
    throw new InvalidArgumentError(
      "use 1 to 50 letters, digits, periods, hyphens or underscores, starting with a letter or digit",
    );
  return value;
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535)
    throw new InvalidArgumentError("use a whole number from 0 to 65535");
  return port;
}
