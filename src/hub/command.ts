import { randomBytes } from "node:crypto";
import { constants, readFileSync } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join, relative, resolve } from "node:path";
import { DEV_POLICIES, type SharedAccessPolicy, validatePolicies } from "./auth/credentials.js";
import { parseCaCertificates } from "./auth/x509.js";
import { DEFAULT_DATA_DIR, type RunningHub, startHub } from "./index.js";
import type { Tier } from "./throttle/index.js";

export interface LocalHubFlags {
  port: number;
  standardPorts?: boolean;
  dataDir: string;
  inMemory?: boolean;
  writeEnv?: string;
  keysFile?: string;
  hostName?: string;
  quiet?: boolean;
  /** Milliseconds query results lag writes (parsed by the CLI). */
  queryDelay?: number;
  /** IoT Hub tier whose throttles to enforce (parsed by the CLI). */
  throttle?: Tier;
  /** PEM files of CA certificates registered for X.509 CA device authentication (`--ca-cert`, repeatable). */
  caCert?: string[];
}

/** The `local-hub` command: start, print how to connect, run until Ctrl-C or SIGTERM. */
export async function runLocalHub(flags: LocalHubFlags): Promise<RunningHub> {
  const policies = flags.keysFile ? readKeysFile(flags.keysFile) : DEV_POLICIES;
  const caCertificates = (flags.caCert ?? []).map(readCaFile);
  let hub: RunningHub;
  try {
    hub = await startHub({
      port: flags.port,
      standardPorts: flags.standardPorts,
      dataDir: flags.dataDir ?? DEFAULT_DATA_DIR,
      inMemory: flags.inMemory,
      policies,
      hostName: flags.hostName,
      quiet: flags.quiet,
      queryDelayMs: flags.queryDelay,
      throttle: flags.throttle,
      caCertificates,
    });
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e.code === "EADDRINUSE")
      throw new Error(
        `port ${flags.standardPorts ? "443 or 8883" : flags.port} is already in use: if it is another local-hub, ` +
          "use it (its terminal shows its connection strings) or stop it; otherwise stop what uses the port, or " +
          "pick another with --port (0 picks a free one)",
      );
    if (e.code === "EACCES")
      throw new Error(
        "not allowed to bind that port: ports below 1024 need privileges; drop --standard-ports or use --port",
      );
    throw error;
  }

  const shown = (cs: string) =>
    policies === DEV_POLICIES
      ? cs
      : cs.replace(/SharedAccessKey=[^;]*/, "SharedAccessKey=<hidden; see --write-env file>");
  const out = (line = "") => console.log(line);
  out(
    `local-hub listening on ${hub.hostName} (HTTPS REST and MQTT over TLS${flags.standardPorts ? " on ports 443 and 8883" : ""})`,
  );
  out(`data:   ${hub.dataDir ?? "in memory (nothing is kept after stop)"}`);
  out(`trust:  ${hub.caFile}   (set IOTHUB_CA_FILE to this file)`);
  out(`service connection string (iothubowner):`);
  out(`  ${shown(hub.serviceConnectionString)}`);
  out(`device connection string (myDeviceId):`);
  try {
    out(`  ${shown(hub.deviceConnectionString())}`);
  } catch {
    out("  (myDeviceId is not registered in this hub)");
  }
  if (policies === DEV_POLICIES)
    out("These are the well-known development keys: fine on your machine, never for anything shared.");
  // Only with the options on: the tutorial's output stays the same without them.
  if (flags.queryDelay)
    out(`queries: results lag writes by ${flags.queryDelay} ms (--query-delay); GET of one twin is current`);
  if (caCertificates.length > 0)
    out(
      `x509:   trusting ${caCertificates.length} CA certificate file(s) for X.509 CA device authentication (--ca-cert)`,
    );
  if (flags.throttle)
    out(
      `throttling: IoT Hub ${flags.throttle} quotas for one unit (--throttle); over quota gets 429 ThrottlingException`,
    );
  // Handlers go in before the env file appears: whoever waits for that file may signal us at once.
  const shutdown = (signal: string) => {
    out(`\n${signal}: stopping local-hub`);
    hub.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGINT", () => shutdown("SIGINT"));
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  if (flags.writeEnv) {
    const file = resolve(flags.writeEnv);
    await writeSecretFile(file, hub.envFile());
    out(`wrote ${relative(process.cwd(), file) || file}`);
  }
  out("Press Ctrl-C to stop.");

  return hub;
}

/**
 * Writes a file holding keys: to a new temporary file with an unpredictable name, created exclusively (O_EXCL:
 * never an existing file, never through a symlink) and owner-only, then renamed into place. rename(2) replaces
 * whatever is at the destination, a symlink included, without following it; a reader never sees half a file.
 */
async function writeSecretFile(file: string, text: string): Promise<void> {
  const partial = join(dirname(file), `.${basename(file)}.${randomBytes(8).toString("hex")}.tmp`);
  const handle = await open(partial, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  let written = false;
  try {
    await handle.writeFile(text);
    await handle.chmod(0o600);
    written = true;
  } finally {
    await handle.close();
    if (!written) await rm(partial, { force: true });
  }
  try {
    await rename(partial, file);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}

/** A `--ca-cert` file: PEM text of one or more CA certificates, checked here so the error names the file. */
function readCaFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new Error(
      `cannot read --ca-cert ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  parseCaCertificates([text], `--ca-cert ${file}`);
  return text;
}

function readKeysFile(file: string): SharedAccessPolicy[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    // JSON.parse's message may quote the text around the error, which here is a key: say only where it is.
    const reason =
      error instanceof SyntaxError
        ? `not valid JSON${/ at position \d+/.exec(error.message)?.[0] ?? ""}`
        : (error as Error).message.split("\n")[0];
    throw new Error(`cannot read --keys-file ${file}: ${reason}`);
  }
  try {
    return validatePolicies((parsed as { policies?: unknown })?.policies);
  } catch (error) {
    throw new Error(`--keys-file ${file}: ${(error as Error).message}`);
  }
}
