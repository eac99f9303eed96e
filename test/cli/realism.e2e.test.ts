import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HubProcess, rest, serviceToken, spawnHub } from "../reliability/support.js";
import { expectFailure, json, run } from "./support.js";

/**
 * The built `local-hub` with --query-delay and --throttle, driven by the built `add-tags-and-query`: eventual
 * consistency gives `--wait` something real to wait for, and throttling produces the tool's 429 message.
 */

interface QueryOutput {
  updated?: { deviceId: string; version: number };
  inPlant: string[];
  consistent: boolean | null;
}

describe("local-hub --query-delay with add-tags-and-query", () => {
  let dir: string;
  let hub: HubProcess;
  let envFile: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "cli-delay-"));
    envFile = join(dir, "hub.env");
    hub = await spawnHub(join(dir, "data"), envFile, { args: ["--query-delay", "2500"] });
  }, 40_000);
  afterAll(async () => {
    await hub?.kill("SIGTERM");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("announces the delay at start", () => {
    expect(hub.output()).toContain(
      "queries: results lag writes by 2500 ms (--query-delay); GET of one twin is current",
    );
  });

  it("without --wait, reports that the queries do not show the update yet", async () => {
    const result = await run("add-tags-and-query", ["--env-file", envFile, "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const out = json<QueryOutput>(result);
    expect(out.updated?.deviceId).toBe("myDeviceId");
    // the twin had no location 2.5 s ago
    expect(out.inPlant).toEqual([]);
    expect(out.consistent).toBe(false);
    expect(result.stderr).toMatch(
      /^note: the query results do not show version \d+ of myDeviceId's twin yet\. IoT Hub queries are eventually consistent/m,
    );
  }, 40_000);

  it("with --wait, polls until the queries show the version it wrote", async () => {
    const started = Date.now();
    const result = await run("add-tags-and-query", ["--env-file", envFile, "--json", "--wait", "30"]);
    const elapsed = Date.now() - started;
    expect(result.code, result.stderr).toBe(0);
    const out = json<QueryOutput>(result);
    expect(out.inPlant).toEqual(["myDeviceId"]);
    expect(out.consistent).toBe(true);
    expect(result.stderr).toBe("");
    // it had to wait for the delay: the version it wrote was not visible at first
    expect(elapsed).toBeGreaterThanOrEqual(2000);
  }, 60_000);
});

describe("local-hub --throttle with add-tags-and-query", () => {
  let dir: string;
  let hub: HubProcess;
  let envFile: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "cli-throttle-"));
    envFile = join(dir, "hub.env");
    hub = await spawnHub(join(dir, "data"), envFile, { args: ["--throttle", "s1"] });
  }, 40_000);
  afterAll(async () => {
    await hub?.kill("SIGTERM");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("announces the tier at start", () => {
    expect(hub.output()).toContain("throttling: IoT Hub S1 quotas for one unit (--throttle)");
  });

  it("prints the tool's throttling message once the S1 query quota (20/min) is used up", async () => {
    const first = await run("add-tags-and-query", ["--env-file", envFile]);
    expect(first.code, first.stderr).toBe(0);
    // Use up the rest of the minute's 20 queries, then keep taking each one that refills (one per 3 s) while the
    // tool runs, so the outcome does not depend on how long the tool takes to start.
    const auth = serviceToken(hub);
    const query = () =>
      rest(hub, "POST", "/devices/query", { auth, body: '{"query":"SELECT * FROM devices"}' });
    let statuses: number[] = [];
    for (let i = 0; i < 30 && !statuses.includes(429); i++) statuses.push((await query()).status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(statuses.length - 1);
    expect(statuses.at(-1)).toBe(429);
    let running = true;
    const drain = (async () => {
      while (running) {
        statuses = [...statuses, (await query()).status];
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const result = await run("add-tags-and-query", ["--env-file", envFile]);
    running = false;
    await drain;
    expectFailure(result, 1);
    expect(result.stderr).toMatch(/^error: The hub localhost:\d+ is throttling requests \(HTTP 429\)\.$/m);
    expect(result.stderr).toMatch(/^hint: Wait a little and run again/m);
  }, 60_000);

  it("refuses an unknown tier with the list of valid ones, exit 2, no stack", async () => {
    const result = await run("local-hub", ["--throttle", "S9", "--in-memory", "--port", "0"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("argument 'S9' is invalid. unknown tier; use one of F1, S1, S2, S3");
    expect(result.stderr).not.toMatch(/^\s+at \S/m);
    const delay = await run("local-hub", ["--query-delay", "soon", "--in-memory", "--port", "0"]);
    expect(delay.code).toBe(2);
    expect(delay.stderr).toContain("use a whole number of milliseconds");
  });
});
