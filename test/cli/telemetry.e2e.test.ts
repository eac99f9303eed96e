import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectFailure, run, startTestHub, type TestHub } from "./support.js";

describe("report-connectivity --send, read back with monitor-events (built CLIs, child processes)", () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub();
  }, 30_000);
  afterAll(() => t?.close());

  it("sends the messages after the report; monitor-events reads each one with its properties", async () => {
    const sent = await run("report-connectivity", ["--env-file", t.envFile, "--once", "--send", "3"], {
      timeoutMs: 30_000,
    });
    expect(sent.code, sent.stderr).toBe(0);
    const lines = sent.stdout.trim().split("\n");
    expect(lines.slice(-3)).toEqual([
      'Sent telemetry message 1 of 3: {"connectivity":"cellular","message":1}',
      'Sent telemetry message 2 of 3: {"connectivity":"cellular","message":2}',
      'Sent telemetry message 3 of 3: {"connectivity":"cellular","message":3}',
    ]);

    const read = await run(
      "monitor-events",
      ["--env-file", t.envFile, "--start", "earliest", "--count", "3", "--json"],
      { timeoutMs: 30_000 },
    );
    expect(read.code, read.stderr).toBe(0);
    const events = read.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).event);
    expect(events.map((e) => e.payload)).toEqual(
      [1, 2, 3].map((message) => ({ connectivity: "cellular", message })),
    );
    expect(events[0]).toMatchObject({
      origin: "myDeviceId",
      properties: {
        application: { source: "report-connectivity" },
        system: { contentType: "application/json", contentEncoding: "utf-8" },
      },
    });
  }, 70_000);

  it("--json --once counts the messages sent", async () => {
    const sent = await run(
      "report-connectivity",
      ["--env-file", t.envFile, "--once", "--json", "--send", "1"],
      {
        timeoutMs: 30_000,
      },
    );
    expect(sent.code, sent.stderr).toBe(0);
    expect(JSON.parse(sent.stdout)).toMatchObject({ deviceId: "myDeviceId", telemetrySent: 1 });
  }, 40_000);

  it("refuses a count out of range before connecting, naming the flag", async () => {
    const result = await run("report-connectivity", ["--env-file", t.envFile, "--send", "1001"]);
    expectFailure(result, 2);
    expect(result.stderr).toMatch(/--send must be a whole number from 0 to 1000/);
  });
});
