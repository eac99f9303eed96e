/**
 * Times commands from a small, fresh process: started from the benchmark's own process (large after
 * scenario 2), every fork would pay for copying its page tables, which is not what a shell pays.
 *
 *   node time-commands.js '<JSON: { cwd, runs, commands: string[][] }>'
 * prints one JSON object: for each run, the wall time, exit status and output of each command in turn.
 */
import { spawnSync } from "node:child_process";

interface Spec {
  cwd: string;
  runs: number;
  /** Each command: node arguments (the script and its options). */
  commands: string[][];
}

export interface Timed {
  ms: number;
  status: number | null;
  stdout: string;
  stderr: string;
}

const spec = JSON.parse(process.argv[2] ?? "{}") as Spec;
const results: Timed[][] = [];
for (let run = 0; run < spec.runs; run++) {
  results.push(
    spec.commands.map((args) => {
      const start = process.hrtime.bigint();
      const r = spawnSync(process.execPath, args, {
        cwd: spec.cwd,
        encoding: "utf8",
        env: { ...process.env, NO_COLOR: "1" },
      });
      return {
        ms: Number(process.hrtime.bigint() - start) / 1e6,
        status: r.status,
        stdout: r.stdout,
        stderr: r.stderr,
      };
    }),
  );
}
process.stdout.write(JSON.stringify(results));
