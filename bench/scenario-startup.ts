/**
 * Scenario 4, start-up and the tutorial: wall time of `add-tags-and-query --help` (the SDKs must load only
 * when a command needs them), of the whole tutorial sequence (three CLI runs) against a running hub, and the
 * hub's resident memory after scenario 3 with 1,000 devices connected.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { closeAll, connectMany } from "./clients.js";
import { deviceId } from "./dataset.js";
import type { Report } from "./report.js";
import type { KeptHub } from "./scenario-queries.js";
import { QUERY_KEY, QUERY_PREFIX } from "./scenario-queries.js";
import { startServer } from "./servers.js";
import { figure, ms, now } from "./stats.js";

const S = "4 start-up";
const CONNECTED = 1000;

export interface StartupOptions {
  reps: number;
  hubAfterQueries?: KeptHub;
  root: string;
}

function runNode(
  args: string[],
  cwd: string,
): { ms: number; status: number | null; stdout: string; stderr: string } {
  const t = now();
  const r = spawnSync(process.execPath, args, {
    cwd,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
  });
  return { ms: ms(t), status: r.status, stdout: r.stdout, stderr: r.stderr };
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
      const bare = Array.from({ length: options.reps }, () => runNode(["-e", ""], cwd).ms);
      const help = Array.from({ length: options.reps }, () => {
        const r = runNode([cli("add-tags-and-query"), "--help"], cwd);
        if (r.status !== 0) throw new Error(`add-tags-and-query --help exited ${r.status}: ${r.stderr}`);
        return r.ms;
      });
      report.add(S, "node -e '' (reference)", figure(bare, "ms"));
      report.add(S, "add-tags-and-query --help", figure(help, "ms"), { atMost: 150, text: "< 150 ms" });
      results.help = { bareNode: figure(bare, "ms"), help: figure(help, "ms") };

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
        for (let rep = 0; rep < options.reps; rep++) {
          const t = now();
          const first = runNode([cli("add-tags-and-query"), "--env-file", envFile, "--json"], cwd);
          const device = runNode(
            [cli("report-connectivity"), "--env-file", envFile, "--once", "--type", "cellular", "--json"],
            cwd,
          );
          const again = runNode([cli("add-tags-and-query"), "--env-file", envFile, "--json"], cwd);
          sequence.push(ms(t));
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
