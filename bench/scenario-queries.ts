/**
 * Scenario 3, queries at scale: N twins (100,000 by default) seeded straight into a data directory through
 * the hub's own DeviceRegistry and SqliteStore (see hub-process.ts), then a hub started on that directory and
 * queried through the real SDK: first-page latency of typical queries and the time to walk every page.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TUTORIAL_DEVICE } from "../src/hub/index.js";
import { countingRegistry, nextPage } from "./clients.js";
import { deviceId, PLANT, reportedFor, tagsFor } from "./dataset.js";
import type { Report } from "./report.js";
import { type Server, seed, startServer } from "./servers.js";
import { figure, ms, now, percentile } from "./stats.js";

const S = "3 queries";
export const QUERY_KEY = Buffer.from("bench-scenario-3-device-key-0001").toString("base64");
export const QUERY_PREFIX = "twin";

export const QUERIES = {
  "tag equality": "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'",
  "tag AND reported property":
    "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43' AND properties.reported.connectivity.type = 'cellular'",
  IN: "SELECT * FROM devices WHERE tags.deviceType IN ['camera', 'gateway']",
  IS_DEFINED: "SELECT * FROM devices WHERE IS_DEFINED(properties.reported.connectivity)",
  "SELECT COUNT()": "SELECT COUNT() AS total FROM devices",
  "COUNT() WHERE (full scan)": "SELECT COUNT() AS n FROM devices WHERE tags.location.region = 'EU'",
  "GROUP BY":
    "SELECT tags.location.region AS region, COUNT() AS n FROM devices GROUP BY tags.location.region",
} as const;

const TARGETS: Partial<Record<keyof typeof QUERIES, { p50: number }>> = {
  "tag equality": { p50: 50 },
  "SELECT COUNT()": { p50: 100 },
};

export interface QueriesOptions {
  twins: number;
  reps: number;
  quick: boolean;
  profileDir?: string;
  /** Leave the hub running for scenario 4 (hub memory with devices connected). */
  keepHub: boolean;
}

export interface KeptHub {
  hub: Server;
  twins: number;
  cleanup(): Promise<void>;
}

export async function scenarioQueries(
  options: QueriesOptions,
  report: Report,
): Promise<{ results: Record<string, unknown>; keepHub?: KeptHub }> {
  const n = options.twins.toLocaleString("en-US");
  const dataDir = mkdtempSync(join(tmpdir(), "bench-s3-"));
  let seeded: { ms: number };
  let hub: Server;
  try {
    seeded = await seed({ dataDir, count: options.twins, prefix: QUERY_PREFIX, key: QUERY_KEY });
    console.log(`  seeded ${n} twins in ${(seeded.ms / 1000).toFixed(1)} s`);
    hub = await startServer("hub", { dataDir });
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  const cleanup = async () => {
    await hub.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  const results: Record<string, unknown> = { seedMs: seeded.ms, hubStartMs: hub.info.startupMs };
  report.add(S, `hub start-up with ${n} twins in its store`, figure([hub.info.startupMs], "ms"));
  const { registry, close } = countingRegistry(hub.info.serviceConnectionString!, hub.info.caPem);
  let keep = false;
  try {
    const expected = expectedFirstPages(options.twins);
    const firstPage = async (sql: string) => {
      const t = now();
      const page = await registry.createQuery(sql, 100).next();
      const elapsed = ms(t);
      const want = expected.get(sql);
      const rows = page.result as Array<Record<string, unknown>>;
      const got = JSON.stringify(
        rows.every((r) => typeof r.deviceId === "string")
          ? rows.map((r) => r.deviceId)
          : [...rows].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
      );
      if (want !== undefined && got !== want) {
        throw new Error(`wrong first page for ${sql}: ${got.slice(0, 200)}, expected ${want.slice(0, 200)}`);
      }
      return elapsed;
    };

    // Cold: the hub renders twin documents lazily, so the first queries after start-up pay for that.
    const cold = {
      tag: await firstPage(QUERIES["tag equality"]),
      full: await firstPage(QUERIES["GROUP BY"]),
    };
    report.add(S, "first tag-equality query after start (cold)", figure([cold.tag], "ms"));
    report.add(S, "first GROUP BY after start (cold, renders every twin)", figure([cold.full], "ms"));
    results.cold = cold;

    const rounds = options.reps;
    const perRound = options.quick ? 10 : 20;
    for (const [name, sql] of Object.entries(QUERIES) as Array<[keyof typeof QUERIES, string]>) {
      const p50s: number[] = [];
      const p99s: number[] = [];
      const all: number[] = [];
      if (options.profileDir) await hub.profileStart();
      for (let r = 0; r < rounds; r++) {
        const samples: number[] = [];
        for (let i = 0; i < perRound; i++) samples.push(await firstPage(sql));
        p50s.push(percentile(samples, 50));
        p99s.push(percentile(samples, 99));
        all.push(...samples);
      }
      if (options.profileDir) {
        const file = `query-${name.replace(/[^A-Za-z0-9]+/g, "-").replace(/-$/, "")}`;
        console.log(`  profile: ${await hub.profileStop(options.profileDir, file)}`);
      }
      const target = TARGETS[name];
      const p50 = figure(p50s, "ms");
      const p99 = figure(p99s, "ms");
      report.add(
        S,
        `${name}: first page p50`,
        p50,
        target ? { atMost: target.p50, text: `< ${target.p50} ms` } : undefined,
      );
      report.add(S, `${name}: first page p99`, p99);
      results[name] = { sql, p50, p99, samples: all.length };
      console.log(`  ${name}: p50 ${p50.median.toFixed(1)} ms, p99 ${p99.median.toFixed(1)} ms`);
    }

    const walks: number[] = [];
    let pages = 0;
    let rows = 0;
    for (let r = 0; r < rounds; r++) {
      const t = now();
      const query = registry.createQuery("SELECT * FROM devices", 100);
      pages = 0;
      rows = 0;
      do {
        // The promise form of next() forgets the continuation token (azure-iothub 1.16): pass it.
        const page = await nextPage(query);
        pages++;
        rows += (page.result as unknown[]).length;
      } while (query.hasMoreResults);
      walks.push(ms(t));
      // The tutorial's own device is there too.
      if (rows < options.twins) throw new Error(`walked ${rows} rows, expected ${options.twins}`);
    }
    const walk = figure(
      walks.map((w) => w / 1000),
      "s",
    );
    report.add(S, `walk all pages of SELECT * (${pages} pages of 100)`, walk);
    results.walkAll = { seconds: walk, pages, rows };
    console.log(`  walked ${rows} twins in ${pages} pages: ${walk.median.toFixed(1)} s`);

    const stats = await hub.stats();
    results.rssAfterQueriesMB = stats.rss / 2 ** 20;
    keep = options.keepHub;
    return { results, keepHub: keep ? { hub, twins: options.twins, cleanup } : undefined };
  } finally {
    close();
    if (!keep) await cleanup();
  }
}

/**
 * What the first page of each query must hold, worked out from the seeded data itself (so a wrong answer
 * cannot pass for a fast one): the first 100 matching device IDs in order, or the aggregate rows.
 */
function expectedFirstPages(twins: number): Map<string, string> {
  const devices = Array.from({ length: twins }, (_, i) => ({
    deviceId: deviceId(QUERY_PREFIX, i),
    tags: tagsFor(i) as { deviceType: string; location?: { region: string; plant: string } },
    reported: reportedFor(i) as { connectivity?: string | { type: string } } | undefined,
  }));
  // The hub's own device has neither tags nor reported properties.
  devices.push({ deviceId: TUTORIAL_DEVICE.deviceId, tags: {} as never, reported: undefined });
  devices.sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
  const ids = (match: (d: (typeof devices)[number]) => boolean) =>
    JSON.stringify(
      devices
        .filter(match)
        .slice(0, 100)
        .map((d) => d.deviceId),
    );
  const type = (d: (typeof devices)[number]) =>
    typeof d.reported?.connectivity === "object" ? d.reported.connectivity.type : undefined;
  const regions = new Map<string, number>();
  for (const d of devices) {
    const region = d.tags.location?.region;
    if (region !== undefined) regions.set(region, (regions.get(region) ?? 0) + 1);
  }
  const groups = [...regions]
    .map(([region, n]) => ({ region, n }))
    // Twins without the grouped property form one group without it.
    .concat([
      { n: devices.filter((d) => d.tags.location === undefined).length } as { region: string; n: number },
    ])
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  return new Map([
    [QUERIES["GROUP BY"], JSON.stringify(groups)],
    [QUERIES["tag equality"], ids((d) => d.tags.location?.plant === PLANT)],
    [
      QUERIES["tag AND reported property"],
      ids((d) => d.tags.location?.plant === PLANT && type(d) === "cellular"),
    ],
    [QUERIES.IN, ids((d) => d.tags.deviceType === "camera" || d.tags.deviceType === "gateway")],
    [QUERIES.IS_DEFINED, ids((d) => d.reported?.connectivity !== undefined)],
    [QUERIES["SELECT COUNT()"], JSON.stringify([{ total: devices.length }])],
    [
      QUERIES["COUNT() WHERE (full scan)"],
      JSON.stringify([{ n: devices.filter((d) => d.tags.location?.region === "EU").length }]),
    ],
  ]);
}
