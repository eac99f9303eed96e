import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, expect } from "vitest";
import { parseServiceConnectionString } from "../../src/config/index.js";
import { type RunningHub, startHub } from "../../src/hub/index.js";
import { createRegistry, type Registry } from "../../src/sdk/index.js";

/**
 * End-to-end helpers: the BUILT command-line tools (dist/cli, built by `npm test`'s pretest) run as child
 * processes against a hub started in this process on a free port with a temporary data directory.
 */

export const OWNER_KEY = "bG9jYWwtaHViLWRldi1pb3RodWJvd25lci1rZXktMDE=";
export const DEVICE_KEY = "bG9jYWwtaHViLWRldi1teURldmljZUlkLWtleS0wMDE=";

export function bin(name: string): string {
  const path = resolve(import.meta.dirname, "../../dist/cli", `${name}.js`);
  if (!existsSync(path))
    throw new Error(`${path} is missing: run \`npm run build\` first (\`npm test\` does).`);
  return path;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Added to a copy of this process's environment from which every IOTHUB_* variable was removed. */
  env?: Record<string, string>;
  /** Defaults to an empty temporary folder, so no stray ./.env is read. */
  cwd?: string;
  timeoutMs?: number;
}

// An empty folder to run the tools in, so no stray ./.env is read; removed when the test file is done.
const scratch = mkdtempSync(join(tmpdir(), "cli-cwd-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("IOTHUB_") && !key.includes("CONNECTION_STRING")) env[key] = value;
  }
  return { ...env, ...extra };
}

export interface Running {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout has matched `pattern`. */
  waitForStdout(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>;
  /** Resolves once stderr has matched `pattern`. */
  waitForStderr(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>;
  exited: Promise<RunResult>;
}

export function start(name: string, args: string[], options: RunOptions = {}): Running {
  const child = spawn(process.execPath, [bin(name), ...args], {
    cwd: options.cwd ?? scratch,
    env: childEnv(options.env),
  });
  let stdout = "";
  let stderr = "";
  const waiters: Array<() => void> = [];
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    for (const w of [...waiters]) w();
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
    for (const w of [...waiters]) w();
  });
  const exited = new Promise<RunResult>((resolveExit) => {
    child.on("close", (code, signal) => {
      resolveExit({ code, signal, stdout, stderr });
      for (const w of [...waiters]) w();
    });
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 45_000);
  exited.then(() => clearTimeout(timer));
  let exitedFlag = false;
  exited.then(() => {
    exitedFlag = true;
  });

  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    waitForStdout: (pattern, ms) => waitFor("stdout", pattern, ms),
    waitForStderr: (pattern, ms) => waitFor("stderr", pattern, ms),
  };

  function waitFor(stream: "stdout" | "stderr", pattern: RegExp, ms = 20_000): Promise<RegExpMatchArray> {
    return new Promise((resolveMatch, reject) => {
      const deadline = setTimeout(() => {
        remove();
        reject(
          new Error(`timed out waiting for ${pattern} in ${stream}; stdout:\n${stdout}\nstderr:\n${stderr}`),
        );
      }, ms);
      const check = () => {
        const match = (stream === "stdout" ? stdout : stderr).match(pattern);
        if (match) {
          remove();
          resolveMatch(match);
        } else if (exitedFlag) {
          remove();
          reject(new Error(`exited before ${pattern} appeared; stdout:\n${stdout}\nstderr:\n${stderr}`));
        }
      };
      const remove = () => {
        clearTimeout(deadline);
        const i = waiters.indexOf(check);
        if (i >= 0) waiters.splice(i, 1);
      };
      waiters.push(check);
      check();
    });
  }
}

export function run(name: string, args: string[] = [], options: RunOptions = {}): Promise<RunResult> {
  return start(name, args, options).exited;
}

/** Parses stdout as one JSON object, with a helpful failure. */
export function json<T = Record<string, unknown>>(result: RunResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`stdout is not JSON (exit ${result.code}):\n${result.stdout}\nstderr:\n${result.stderr}`);
  }
}

/** Asserts a failure: exit code, one `error:` and one `hint:` line, no stack trace, no secret. */
export function expectFailure(
  result: RunResult,
  code: 1 | 2,
  secrets: string[] = [OWNER_KEY, DEVICE_KEY],
): void {
  const all = `${result.stdout}\n${result.stderr}`;
  expect(result.code, all).toBe(code);
  expect(result.stderr).toMatch(/^error: \S/m);
  expect(result.stderr).toMatch(/^(hint: \S|\(run with --help for usage\))/m);
  expect(result.stderr).not.toMatch(/^\s+at \S/m);
  for (const secret of secrets) {
    for (let i = 0; i + 8 <= secret.length; i += 4) expect(all).not.toContain(secret.slice(i, i + 8));
  }
}

export interface TestHub {
  hub: RunningHub;
  dir: string;
  /** A dotenv file for this hub and myDeviceId, as `local-hub --write-env` writes it. */
  envFile: string;
  registry: Registry;
  /** Writes another env file in the hub's folder. */
  writeEnv(name: string, lines: string[]): string;
  close(): Promise<void>;
}

export async function startTestHub(): Promise<TestHub> {
  const dir = mkdtempSync(join(tmpdir(), "cli-hub-"));
  const hub = await startHub({ port: 0, dataDir: join(dir, "data"), quiet: true });
  const envFile = join(dir, "hub.env");
  writeFileSync(envFile, hub.envFile());
  const service = parseServiceConnectionString(hub.serviceConnectionString, { name: "test" });
  const clients = await createRegistry(service, hub.caPem);
  return {
    hub,
    dir,
    envFile,
    registry: clients.registry,
    writeEnv(name, lines) {
      const path = join(dir, name);
      writeFileSync(path, `${lines.join("\n")}\n`);
      return path;
    },
    async close() {
      clients.close();
      await hub.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A 32-byte base64 key derived from a name, for test devices. */
export function keyFor(deviceId: string): string {
  return createHash("sha256").update(deviceId).digest("base64");
}

/** Registers a device; its key is {@link keyFor}(deviceId) unless given. */
export async function registerDevice(
  registry: Registry,
  deviceId: string,
  key = keyFor(deviceId),
): Promise<void> {
  await registry.create({
    deviceId,
    status: "enabled",
    authentication: { symmetricKey: { primaryKey: key, secondaryKey: key } },
  });
}

/** A TCP server for failure cases: `silent` accepts and never answers; `plain` answers in clear text. */
export async function tcpServer(kind: "silent" | "plain"): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<import("node:net").Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    if (kind === "plain") socket.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        // Silent servers hold sockets open; drop them.
        for (const socket of sockets) socket.destroy();
      }),
  };
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const { port, close } = await tcpServer("plain");
  await close();
  return port;
}
