import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { ConfigError, EXIT_RUNTIME, EXIT_USAGE, type SettingSource } from "../config/index.js";
import { describeFailure, type FailureContext } from "../sdk/errors.js";

/**
 * What the tutorial's command-line tools share: commander set up so that usage errors exit 2, and failure
 * reporting as one line of cause plus one line of hint (stack traces only with --verbose).
 */

export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
}

export function newProgram(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .version(packageVersion(), "-V, --version", "print the version and exit")
    .helpOption("-h, --help", "print this help and exit")
    .showHelpAfterError("(run with --help for usage)")
    .allowExcessArguments(false)
    .exitOverride();
}

/** An option with a numeric default, shown in `--help` as a number: `(default: 30)`. */
export function numberOption(flags: string, description: string, defaultValue: string): Option {
  return new Option(flags, description).default(defaultValue, defaultValue);
}

/** Options every tool has. */
export interface CommonFlags {
  verbose?: boolean;
  json?: boolean;
  envFile?: string;
  caFile?: string;
}

export function addCommonOptions(program: Command): Command {
  return program
    .option("--env-file <path>", "read settings from this dotenv file instead of ./.env")
    .option("--ca-file <path>", "PEM file of an extra CA to trust (overrides IOTHUB_CA_FILE)")
    .option("--json", "print the result as JSON on stdout")
    .option("--verbose", "print each setting and where it came from, progress, and stack traces on failure");
}

/**
 * `--verbose`: every setting with where its value came from (flag, environment variable, env file, default).
 * Connection strings are shown without their key.
 */
export function logSettings(
  log: (line: string) => void,
  program: Command,
  sources: SettingSource[],
  flags: Record<string, string>,
): void {
  log("Settings (flags > environment variables > env file > defaults):");
  const rows: SettingSource[] = [...sources];
  for (const [key, flag] of Object.entries(flags)) {
    const value = program.getOptionValue(key);
    const origin = program.getOptionValueSource(key);
    rows.push({
      name: flag,
      source: origin === "cli" ? "flag" : origin === "default" ? "default" : "not set",
      shown: value === undefined ? "-" : String(value),
    });
  }
  const width = Math.max(...rows.map((r) => r.name.length));
  for (const row of rows) log(`  ${row.name.padEnd(width)}  ${row.shown}  [${row.source}]`);
}

export function writeErr(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Prints a failure as `error: ...` and `hint: ...` on stderr and returns the exit code to use. */
export function reportError(error: unknown, context: FailureContext | undefined, verbose: boolean): number {
  if (error instanceof ConfigError) {
    writeErr(`error: ${error.message}`);
    if (error.hint) writeErr(`hint: ${error.hint}`);
    if (verbose && error.stack) writeErr(error.stack);
    return EXIT_USAGE;
  }
  const failure = context
    ? describeFailure(error, context)
    : { message: (error as Error)?.message ?? String(error), hint: "Run again with --verbose for details." };
  writeErr(`error: ${failure.message}`);
  writeErr(`hint: ${failure.hint}`);
  if (verbose) {
    let inner: unknown = error;
    for (let depth = 0; inner && depth < 4; depth++) {
      const e = inner as { stack?: string; message?: string; transportError?: unknown; cause?: unknown };
      writeErr(
        depth === 0 ? (e.stack ?? String(inner)) : `caused by: ${e.stack ?? e.message ?? String(inner)}`,
      );
      inner = e.transportError ?? e.cause;
    }
  }
  return EXIT_RUNTIME;
}

/** Exits once stdout has been flushed. */
export function exit(code: number): never {
  process.exitCode = code;
  process.stdout.write("", () => process.exit(code));
  // Should stdout never drain (a closed pipe), leave anyway.
  setTimeout(() => process.exit(code), 2000).unref();
  return undefined as never;
}

/**
 * Parses argv (usage errors exit 2, --help and --version exit 0), runs `main`, reports what it throws and
 * exits with its code.
 */
export async function runCli<T extends CommonFlags>(
  program: Command,
  main: (flags: T, setContext: (context: FailureContext) => void) => Promise<number>,
  argv: string[] = process.argv,
): Promise<void> {
  try {
    program.parse(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      exit(error.exitCode === 0 ? 0 : EXIT_USAGE);
      return;
    }
    throw error;
  }
  const flags = program.opts<T>();
  let context: FailureContext | undefined;
  let code: number;
  try {
    code = await main(flags, (c) => {
      context = c;
    });
  } catch (error) {
    code = reportError(error, context, flags.verbose === true);
  }
  exit(code);
}
