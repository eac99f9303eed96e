/**
 * Times the hub's start and stop from a small, fresh process (see time-commands.ts for why):
 *
 *   node time-hub.js '<JSON: { root, runs }>'
 *
 * For each run, in turn: bare `node -e ""`; the `local-hub` command restarted on a data directory that
 * already has its certificates, until its --write-env file appears (the point where a script may use it),
 * then SIGTERM until the process has exited; and in a fresh Node process, the programmatic startHub() as a
 * test suite calls it: the first one (module loading included) and a second one, each on a new data
 * directory and in memory, with stop() timed too. Prints one JSON object.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

interface Spec {
  root: string;
  cwd: string;
  runs: number;
}

export interface HubTimings {
  bareNode: number[];
  /** `local-hub` restart: spawn until the env file exists. */
  cliReady: number[];
  /** `local-hub` restart: spawn until a first HTTPS request is answered (asked as soon as the env file exists). */
  cliFirstAnswer: number[];
  /** SIGTERM until the `local-hub` process exited (after that first answer). */
  cliStop: number[];
  /** In a fresh process: import of the hub module + first startHub() on a new data directory. */
  firstStart: number[];
  /** A later startHub() in the same process, new data directory (what each further test file costs). */
  start: number[];
  /** startHub({ inMemory: true }) in the same process. */
  startInMemory: number[];
  /** startHub() on a new data directory until a first HTTPS request is answered. */
  startToFirstAnswer: number[];
  /** stop() of a running hub, the slowest of the three (one has answered a request). */
  stop: number[];
}

const ms = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e6;

/** One unauthenticated HTTPS request: any answer (401) means the hub's HTTP side is serving. */
function firstAnswer(port: number, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", servername: "localhost", port, ca, path: "/twins/x", agent: false },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** The in-process part, run in a child of this helper (argv[2] === "in-process"). */
async function inProcess(root: string, cwd: string) {
  const t0 = process.hrtime.bigint();
  const { startHub } = (await import(
    pathToFileURL(join(root, "dist", "hub", "index.js")).href
  )) as typeof import("../src/hub/index.js");
  const dirs = [mkdtempSync(join(cwd, "a-")), mkdtempSync(join(cwd, "b-"))];
  const first = await startHub({ port: 0, dataDir: dirs[0], quiet: true });
  const firstStart = ms(t0);
  let t = process.hrtime.bigint();
  await first.stop();
  const stops = [ms(t)];
  t = process.hrtime.bigint();
  const second = await startHub({ port: 0, dataDir: dirs[1], quiet: true });
  const start = ms(t);
  t = process.hrtime.bigint();
  await second.stop();
  stops.push(ms(t));
  t = process.hrtime.bigint();
  const third = await startHub({ port: 0, dataDir: mkdtempSync(join(cwd, "c-")), quiet: true });
  await firstAnswer(third.port, third.caPem);
  const startToFirstAnswer = ms(t);
  t = process.hrtime.bigint();
  await third.stop();
  stops.push(ms(t));
  t = process.hrtime.bigint();
  const memory = await startHub({ port: 0, inMemory: true, quiet: true });
  const startInMemory = ms(t);
  t = process.hrtime.bigint();
  await memory.stop();
  stops.push(ms(t));
  process.stdout.write(
    JSON.stringify({ firstStart, start, startInMemory, startToFirstAnswer, stop: Math.max(...stops) }),
  );
}

function cliRestart(
  root: string,
  dataDir: string,
  envFile: string,
): Promise<{ ready: number; answered: number; stop: number }> {
  rmSync(envFile, { force: true });
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const child = spawn(
      process.execPath,
      [
        join(root, "dist", "cli", "local-hub.js"),
        "--port",
        "0",
        "--data-dir",
        dataDir,
        "--write-env",
        envFile,
        "--quiet",
      ],
      { stdio: "ignore" },
    );
    let ready = 0;
    let answered = 0;
    let stopAt = 0n;
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      clearInterval(poll);
      if (!ready) reject(new Error(`local-hub exited (${code ?? signal}) before writing ${envFile}`));
      else resolve({ ready, answered, stop: ms(stopAt) });
    });
    // Polling is cheap next to a process start and does not depend on fs.watch's platform quirks.
    const poll = setInterval(() => {
      if (ready || !existsSync(envFile)) return;
      ready = ms(t);
      const env = readFileSync(envFile, "utf8");
      const port = Number(/HostName=[^:;]+:(\d+)/.exec(env)?.[1]);
      const ca = readFileSync(/IOTHUB_CA_FILE=(.*)/.exec(env)?.[1] ?? "", "utf8");
      firstAnswer(port, ca).then(
        () => {
          answered = ms(t);
          stopAt = process.hrtime.bigint();
          child.kill("SIGTERM");
        },
        (error) => {
          child.kill("SIGKILL");
          reject(error);
        },
      );
    }, 1);
  });
}

async function main(spec: Spec) {
  const dataDir = join(spec.cwd, "cli-hub");
  mkdirSync(dataDir, { recursive: true });
  const envFile = join(spec.cwd, "hub.env");
  // First start: makes the certificates, not timed (restarts are what a test suite or a user repeats).
  await cliRestart(spec.root, dataDir, envFile);
  const out: HubTimings = {
    bareNode: [],
    cliReady: [],
    cliFirstAnswer: [],
    cliStop: [],
    firstStart: [],
    start: [],
    startInMemory: [],
    startToFirstAnswer: [],
    stop: [],
  };
  for (let run = 0; run < spec.runs; run++) {
    let t = process.hrtime.bigint();
    spawnSync(process.execPath, ["-e", ""]);
    out.bareNode.push(ms(t));
    const cli = await cliRestart(spec.root, dataDir, envFile);
    out.cliReady.push(cli.ready);
    out.cliFirstAnswer.push(cli.answered);
    out.cliStop.push(cli.stop);
    t = process.hrtime.bigint();
    const child = spawnSync(
      process.execPath,
      [process.argv[1], "in-process", JSON.stringify({ root: spec.root, cwd: spec.cwd })],
      {
        encoding: "utf8",
      },
    );
    if (child.status !== 0) throw new Error(`in-process timing failed: ${child.stderr}`);
    const r = JSON.parse(child.stdout) as {
      firstStart: number;
      start: number;
      startInMemory: number;
      startToFirstAnswer: number;
      stop: number;
    };
    out.firstStart.push(r.firstStart);
    out.start.push(r.start);
    out.startInMemory.push(r.startInMemory);
    out.startToFirstAnswer.push(r.startToFirstAnswer);
    out.stop.push(r.stop);
  }
  process.stdout.write(JSON.stringify(out));
}

if (process.argv[2] === "in-process") {
  const { root, cwd } = JSON.parse(process.argv[3]) as { root: string; cwd: string };
  await inProcess(root, cwd);
  process.exit(0);
} else {
  const tmp = mkdtempSync(join(tmpdir(), "bench-hub-times-"));
  try {
    const spec = JSON.parse(process.argv[2] ?? "{}") as Omit<Spec, "cwd">;
    await main({ ...spec, cwd: tmp });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
