/**
 * Scenario 4, start-up and the tutorial: wall time of `add-tags-and-query --help` (the SDKs must load only
 * when a command needs them), the hub's own start and stop (the `local-hub` command restarted, and the
 * programmatic startHub()/stop() a test suite calls; see time-hub.ts), of the whole tutorial sequence (three
 * CLI runs) against a running hub, and the hub's resident memory after scenario 3 with 1,000 devices
 * connected.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { closeAll, connectMany } from "./clients.js";
import { deviceId } from "./dataset.js";
import type { Report } from "./report.js";
import type { KeptHub } from "./scenario-queries.js";
import { QUERY_KEY, QUERY_PREFIX } from "./scenario-queries.js";
import { startServer } from "./servers.js";
import { figure } from "./stats.js";
import type { Timed } from "./time-commands.js";
import type { HubTimings } from "./time-hub.js";

const S = "4 start-up";
const CONNECTED = 1000;

export interface StartupOptions {
  reps: number;
  hubAfterQueries?: KeptHub;
  root: string;
}

/** Runs node commands `runs` times in turn from a small fresh process (see time-commands.ts). */
function timeCommands(cwd: string, runs: number, commands: string[][]): Timed[][] {
  const helper = fileURLToPath(new URL("./time-commands.js", import.meta.url));
  const out = execFileSync(process.execPath, [helper, JSON.stringify({ cwd, runs, commands })], {
    encoding: "utf8",
    maxBuffer: 64 * 2 ** 20,
  });
  return JSON.parse(out) as Timed[][];
}

/** The hub's start and stop, from a fresh helper process, with bare Node's start in the same runs. */
function hubTimes(options: StartupOptions, report: Report, results: Record<string, unknown>) {
  const helper = fileURLToPath(new URL("./time-hub.js", import.meta.url));
  const t = JSON.parse(
    execFileSync(process.execPath, [helper, JSON.stringify({ root: options.root, runs: options.reps })], {
      encoding: "utf8",
    }),
  ) as HubTimings;
  const ratio = t.cliReady.map((ready, i) => ready / t.bareNode[i]);
  report.add(S, "node -e '' (reference, same runs)", figure(t.bareNode, "ms"));
  report.add(S, "local-hub restart until --write-env file", figure(t.cliReady, "ms"));
  report.add(S, "  ratio to bare node", figure(ratio, "x"), { atMost: 3, text: "<= 3x" });
  report.add(S, "local-hub restart until a first HTTPS answer", figure(t.cliFirstAnswer, "ms"));
  report.add(S, "local-hub SIGTERM until exited", figure(t.cliStop, "ms"));
  report.add(S, "startHub() first in a process (import included)", figure(t.firstStart, "ms"));
  report.add(S, "startHub() new data dir", figure(t.start, "ms"), { atMost: 150, text: "< 150 ms" });
  report.add(S, "startHub({ inMemory })", figure(t.startInMemory, "ms"), { atMost: 150, text: "< 150 ms" });
  report.add(S, "startHub() new data dir, until a first HTTPS answer", figure(t.startToFirstAnswer, "ms"));
  report.add(S, "hub.stop()", figure(t.stop, "ms"), { atMost: 100, text: "< 100 ms" });
  results.hubStart = t;
}

export async function scenarioStartup(
  options: StartupOptions,
  report: Report,
): Promise<Record<string, unknown>> {
  const results: Record<string, unknown> = {};
  const cli = (name: string) => join(options.root, "dist", "cli", `${name}.js`);
  const cwd = mkdtempSync(join(tmpdir(), "bench-s4-"));
  try {
    if (!existsSync(cli("add-tags-and-query")) || !existsSync(cli("report-connectivity"))) {
      report.note("scenario 4: the CLIs are not built (dist/cli); skipped --help and the tutorial sequence");
    } else {
      // Node's own start-up, for reference: the CLI cannot be faster than this.
      const timed = timeCommands(cwd, options.reps, [
        ["-e", ""],
        [cli("add-tags-and-query"), "--help"],
      ]);
      const bare = timed.map(([b]) => b.ms);
      const help = timed.map(([, h]) => {
        if (h.status !== 0) throw new Error(`add-tags-and-query --help exited ${h.status}: ${h.stderr}`);
        return h.ms;
      });
      report.add(S, "node -e '' (reference)", figure(bare, "ms"));
      report.add(S, "add-tags-and-query --help", figure(help, "ms"), { atMost: 150, text: "< 150 ms" });
      results.help = { bareNode: figure(bare, "ms"), help: figure(help, "ms") };

      hubTimes(options, report, results);

      const dataDir = join(cwd, "hub");
      const hub = await startServer("hub", { dataDir });
      try {
        const envFile = join(cwd, ".env");
        writeFileSync(envFile, hub.info.envFile!);
        const sequence: number[] = [];
        const steps: Record<string, number[]> = {
          "add-tags-and-query": [],
          "report-connectivity --once": [],
          again: [],
        };
        const runs = timeCommands(cwd, options.reps, [
          [cli("add-tags-and-query"), "--env-file", envFile, "--json"],
          [cli("report-connectivity"), "--env-file", envFile, "--once", "--type", "cellular", "--json"],
          [cli("add-tags-and-query"), "--env-file", envFile, "--json"],
        ]);
        for (const [first, device, again] of runs) {
          sequence.push(first.ms + device.ms + again.ms);
          for (const [name, r] of [
            ["add-tags-and-query", first],
            ["report-connectivity --once", device],
            ["again", again],
          ] as const) {
            if (r.status !== 0) throw new Error(`${name} exited ${r.status}: ${r.stderr.trim()}`);
            steps[name].push(r.ms);
          }
          const answer = JSON.parse(again.stdout) as { inPlantCellular?: string[] };
          if (!answer.inPlantCellular?.includes("myDeviceId")) {
            throw new Error(`the tutorial's last step does not show myDeviceId on cellular: ${again.stdout}`);
          }
        }
        report.add(S, "tutorial sequence (3 CLI runs)", figure(sequence, "ms"));
        for (const [name, values] of Object.entries(steps)) {
          report.add(S, `  ${name === "again" ? "add-tags-and-query again" : name}`, figure(values, "ms"));
        }
        results.tutorial = { sequence: figure(sequence, "ms"), steps };
      } finally {
        await hub.stop();
      }
    }

    const kept = options.hubAfterQueries;
    if (!kept) {
      report.note("scenario 4: hub memory is measured on scenario 3's hub; run scenarios 3 and 4 together");
    } else {
      try {
        const idle = await kept.hub.stats();
        const ids = Array.from({ length: Math.min(CONNECTED, kept.twins) }, (_, i) =>
          deviceId(QUERY_PREFIX, i),
        );
        const target = {
          port: kept.hub.info.port,
          caPem: kept.hub.info.caPem,
          hostName: kept.hub.info.hostName,
          key: QUERY_KEY,
        };
        const { clients } = await connectMany(target, ids);
        try {
          // The hub counts a device once its connection is set up, just after the CONNACK went out.
          let withDevices = await kept.hub.stats();
          for (let i = 0; i < 50 && withDevices.connected < ids.length; i++) {
            await new Promise((resolve) => setTimeout(resolve, 100));
            withDevices = await kept.hub.stats();
          }
          if (withDevices.connected < ids.length)
            throw new Error(`only ${withDevices.connected} devices connected`);
          // Live memory, without the garbage that full scans leave until the next collection.
          await kept.hub.gc();
          const collected = await kept.hub.stats();
          const n = kept.twins.toLocaleString("en-US");
          report.add(S, `hub RSS, ${n} twins, after the queries`, figure([idle.rss / 2 ** 20], "MB"));
          report.add(
            S,
            `hub RSS, ${n} twins, ${ids.length.toLocaleString("en-US")} devices connected`,
            figure([withDevices.rss / 2 ** 20], "MB"),
            { atMost: 300, text: "< 300 MB" },
          );
          report.add(
            S,
            `hub RSS, ${n} twins, ${ids.length.toLocaleString("en-US")} devices, after a full GC`,
            figure([collected.rss / 2 ** 20], "MB"),
          );
          const mb = (x: number) => Math.round(x / 2 ** 17) / 8;
          results.rss = {
            idle: { rssMB: mb(idle.rss), heapUsedMB: mb(idle.heapUsed), heapTotalMB: mb(idle.heapTotal) },
            connected: {
              rssMB: mb(withDevices.rss),
              heapUsedMB: mb(withDevices.heapUsed),
              heapTotalMB: mb(withDevices.heapTotal),
              externalMB: mb(withDevices.external),
            },
            afterGC: {
              rssMB: mb(collected.rss),
              heapUsedMB: mb(collected.heapUsed),
              heapTotalMB: mb(collected.heapTotal),
            },
            devices: withDevices.connected,
          };
          console.log(`  hub memory: ${JSON.stringify(results.rss)}`);
        } finally {
          await closeAll(clients);
        }
      } finally {
        await kept.cleanup();
      }
    }
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
  return results;
}
