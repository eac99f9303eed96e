/** Starts the hub, the bare broker or the seeder in a child process (see hub-process.ts). */
import { type ChildProcess, fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SeedArgs, ServerInfo, ServerStats } from "./hub-process.js";

const SCRIPT = new URL("./hub-process.js", import.meta.url);

export interface Server {
  info: ServerInfo;
  pid: number;
  stats(): Promise<ServerStats>;
  /** Asks the child to run a full garbage collection (it runs with --expose-gc). */
  gc(): Promise<void>;
  stop(): Promise<void>;
  /** Profiles the child between these two calls; returns the .cpuprofile file. */
  profileStart(): Promise<void>;
  profileStop(dir: string, name: string): Promise<string>;
}

function spawnChild(role: string, args: unknown): ChildProcess {
  const execArgv = ["--expose-gc"];
  return fork(SCRIPT, [role, JSON.stringify(args)], {
    execArgv,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
}

function nextMessage<T>(child: ChildProcess, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Record<string, unknown>) => {
      if (m.error) {
        cleanup();
        reject(new Error(`${key}: ${m.error}`));
      } else if (key in m) {
        cleanup();
        resolve(m[key] as T);
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`the ${key} child exited with code ${code}`));
    };
    const cleanup = () => {
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

export async function startServer(
  role: "hub" | "broker",
  args: { dataDir?: string; caCertificates?: string[] } = {},
): Promise<Server> {
  const child = spawnChild(role, args);
  const info = await nextMessage<ServerInfo>(child, "ready");
  let stopping: Promise<void> | undefined;
  return {
    info,
    pid: child.pid ?? 0,
    stats() {
      const reply = nextMessage<ServerStats>(child, "stats");
      child.send({ cmd: "stats" });
      return reply;
    },
    async profileStart() {
      const reply = nextMessage<boolean>(child, "profiling");
      child.send({ cmd: "profile-start" });
      await reply;
    },
    profileStop(dir: string, name: string) {
      const reply = nextMessage<string>(child, "profile");
      child.send({ cmd: "profile-stop", dir, name });
      return reply;
    },
    async gc() {
      const reply = nextMessage<boolean>(child, "gc");
      child.send({ cmd: "gc" });
      await reply;
    },
    stop() {
      stopping ??= (async () => {
        if (child.exitCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
        child.send({ cmd: "stop" });
        const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
        await exited;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}

/** A hub on a new temporary data directory; `remove` stops it and deletes the directory. */
export async function startHubInTemp(
  prefix: string,
  caCertificates?: string[],
): Promise<{ hub: Server; remove(): Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  let hub: Server;
  try {
    hub = await startServer("hub", { dataDir, caCertificates });
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    hub,
    async remove() {
      await hub.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Seeds a data directory in a short-lived process (so its memory does not count against the hub). */
export async function seed(args: SeedArgs): Promise<{ count: number; ms: number }> {
  const child = spawnChild("seed", args);
  const done = nextMessage<{ count: number; ms: number }>(child, "seeded");
  const result = await done;
  await new Promise<void>((resolve) =>
    child.exitCode !== null ? resolve() : child.once("exit", () => resolve()),
  );
  return result;
}

/** CPU share of one core used by a server between two stats samples. */
export function cpuShare(before: ServerStats, after: ServerStats, seconds: number): number {
  return (after.cpuMicros - before.cpuMicros) / 1e6 / seconds;
}
