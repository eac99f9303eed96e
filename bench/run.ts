/**
 * `npm run bench`: every scenario of issue 5 in one process run, against hubs it starts itself (each in its
 * own process, with a temporary data directory). Prints a table and writes bench/results.json.
 *
 *   npm run bench                              # everything, full sizes (about 10-15 minutes)
 *   npm run bench -- --quick                   # everything, small sizes (about 2 minutes)
 *   npm run bench -- --scenario 1,3            # some scenarios
 *   npm run bench -- --sizes 100,1000 --devices 100 --twins 20000 --reps 2 --duration 3
 *   npm run bench -- --profile                 # also write CPU profiles of the hub processes
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { cpus, freemem, loadavg, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Report } from "./report.js";
import { scenarioBackend } from "./scenario-backend.js";
import { scenarioC2d } from "./scenario-c2d.js";
import { scenarioDevices } from "./scenario-devices.js";
import { scenarioMethods } from "./scenario-methods.js";
import { scenarioQueries } from "./scenario-queries.js";
import { scenarioStartup } from "./scenario-startup.js";
import { scenarioTelemetry } from "./scenario-telemetry.js";
import { scenarioWebSockets } from "./scenario-websockets.js";
import { scenarioX509 } from "./scenario-x509.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

const { values } = parseArgs({
  options: {
    scenario: { type: "string", default: "1,2,3,4,5,6,7,8,9" },
    quick: { type: "boolean", default: false },
    sizes: { type: "string" },
    devices: { type: "string" },
    twins: { type: "string" },
    reps: { type: "string" },
    duration: { type: "string" },
    profile: { type: "boolean", default: false },
    out: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (values.help) {
  console.log(`npm run bench -- [options]
  --scenario 1,...,9   scenarios to run (1 back-end at scale, 2 device side, 3 queries, 4 start-up/tutorial/RSS, 5 X.509 logins,
                       6 device-to-cloud telemetry read back through the Event Hubs-compatible endpoint,
                       7 direct methods: service REST -> device over MQTT -> answer, 100 devices,
                       8 reported patches over MQTT over WebSockets vs MQTT over TLS,
                       9 cloud-to-device messages from the service client to MQTT devices)
  --quick              small sizes and fewer runs (a couple of minutes)
  --sizes a,b,c        scenario 1 registry sizes (default 100,1000,10000; quick 100,1000)
  --devices a,b        scenarios 2, 6 and 8 connected devices K (default 100,1000; quick 100,1000); scenario 9: 1000 (quick 100)
  --twins n            scenario 3 twins (default 100000; quick 10000)
  --reps n             repeated runs per figure (default 3; quick 1)
  --duration s         scenarios 2, 6, 7 and 8 seconds per measurement (default 5; quick 2)
  --profile            write CPU profiles (node --cpu-prof) of the hub processes to a temporary directory
  --out file           where to write the results (default bench/results.json)`);
  process.exit(0);
}

const list = (text: string | undefined, fallback: number[]) =>
  text === undefined ? fallback : text.split(",").map((x) => Number(x.trim()));
const quick = values.quick;
const scenarios = new Set(list(values.scenario, []));
const reps = Number(values.reps ?? (quick ? 1 : 3));
const options = {
  sizes: list(values.sizes, quick ? [100, 1000] : [100, 1000, 10_000]),
  devices: list(values.devices, [100, 1000]),
  twins: Number(values.twins ?? (quick ? 10_000 : 100_000)),
  duration: Number(values.duration ?? (quick ? 2 : 5)),
  reps,
};
for (const [name, v] of Object.entries(options)) {
  const bad = (Array.isArray(v) ? v : [v]).some((n) => !Number.isFinite(n) || n <= 0);
  if (bad) {
    console.error(`invalid --${name}`);
    process.exit(2);
  }
}
const profileDir = values.profile ? mkdtempSync(join(tmpdir(), "bench-profiles-")) : undefined;

const cpuList = cpus();
const machine = {
  cpuModel: cpuList[0]?.model ?? "unknown",
  cores: cpuList.length,
  memoryGB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
  freeMemoryGB: Math.round((freemem() / 2 ** 30) * 10) / 10,
  node: process.version,
  platform: `${process.platform} ${release()}`,
  loadAverageAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
};
console.log(
  `bench: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGB} GB, node ${machine.node}, ` +
    `load ${machine.loadAverageAtStart.join(" ")}${quick ? " (quick)" : ""}`,
);

const report = new Report();
const results: Record<string, unknown> = {};
const started = Date.now();
let failed = false;
const run = async (n: number, title: string, body: () => Promise<unknown>) => {
  if (!scenarios.has(n)) return;
  console.log(`\nscenario ${n}: ${title}`);
  const t = Date.now();
  try {
    results[`scenario${n}`] = await body();
  } catch (error) {
    failed = true;
    console.error(`scenario ${n} failed: ${(error as Error)?.stack ?? error}`);
    results[`scenario${n}`] = { error: String((error as Error)?.message ?? error) };
  }
  console.log(`  (${((Date.now() - t) / 1000).toFixed(0)} s)`);
};

let hubAfterQueries: Awaited<ReturnType<typeof scenarioQueries>>["keepHub"];
await run(1, "back-end at scale, add-tags-and-query vs the original tutorial's strategy", () =>
  scenarioBackend({ sizes: options.sizes, reps: options.reps }, report),
);
await run(2, "device side, reported patches over MQTT vs a bare broker", () =>
  scenarioDevices(
    { devices: options.devices, duration: options.duration, reps: options.reps, profileDir },
    report,
  ),
);
await run(3, "queries at scale", async () => {
  const r = await scenarioQueries(
    { twins: options.twins, reps: Math.max(options.reps, 1), quick, profileDir, keepHub: scenarios.has(4) },
    report,
  );
  hubAfterQueries = r.keepHub;
  return r.results;
});
await run(4, "start-up, the tutorial, hub memory", () =>
  scenarioStartup({ reps: quick ? 3 : 10, hubAfterQueries, root: ROOT }, report),
);
await run(5, "X.509 device logins next to SAS logins", () =>
  scenarioX509({ devices: quick ? 100 : 300, reps: Math.max(options.reps, 3) }, report),
);

await run(6, "device-to-cloud telemetry into an Event Hubs consumer vs a bare broker", () =>
  scenarioTelemetry(
    { devices: options.devices, duration: options.duration, reps: options.reps, profileDir },
    report,
  ),
);

await run(7, "direct methods: round trips through the hub (service REST -> device MQTT -> answer)", () =>
  scenarioMethods(
    { devices: 100, rate: 500, duration: options.duration, reps: options.reps, profileDir },
    report,
  ),
);

await run(8, "device side over MQTT over WebSockets vs MQTT over TLS", () =>
  scenarioWebSockets(
    { devices: options.devices, duration: options.duration, reps: options.reps, profileDir },
    report,
  ),
);

await run(9, "cloud-to-device messages from the service client to MQTT devices", () =>
  scenarioC2d(
    { devices: values.devices ? options.devices : [quick ? 100 : 1000], reps: options.reps },
    report,
  ),
);

const table = report.table();
console.log(`\n${table}`);
for (const note of report.notes) console.log(`note: ${note}`);
const out = values.out ?? join(ROOT, "bench", "results.json");
mkdirSync(join(out, ".."), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      durationSeconds: Math.round((Date.now() - started) / 1000),
      machine,
      options: { ...options, quick, scenarios: [...scenarios] },
      rows: report.rows,
      notes: report.notes,
      table,
      tableMarkdown: report.markdown(),
      scenarios: results,
    },
    null,
    2,
  )}\n`,
);
console.log(`\nwrote ${out} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
if (profileDir) console.log(`CPU profiles of the hub processes: ${profileDir}`);
process.exit(failed ? 1 : 0);
