import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "./support.js";

/**
 * The soak's short mode, so CI exercises `npm run soak`'s script on every run: 100 devices for 20 seconds
 * with reported patches, desired patches and reconnects against the built hub in a child process. The
 * full soak (1,000 devices, 10 minutes) is `npm run soak`.
 */

interface SoakReport {
  ok: boolean;
  error?: string;
  devices: number;
  failures: number;
  failureDetails: string[];
  operations: {
    reportedSent: number;
    reportedAcked: number;
    desiredSent: number;
    desiredDelivered: number;
    reconnects: number;
    twinChecks: number;
  };
  rss: { startMB: number; endMB: number; growthPercent: number };
  handles: { start: number; end: number; growthPercent: number };
}

describe("soak, short mode (npm run soak -- --duration 20s --devices 100)", () => {
  it("keeps 100 devices connected under load with zero failed operations and under 10 % growth", async () => {
    const child = spawn(
      process.execPath,
      [resolve(ROOT, "scripts/soak.mjs"), "--duration", "20s", "--devices", "100", "--json"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const code = await new Promise<number | null>((r) => child.on("close", (c) => r(c)));
    const last = out.trim().split("\n").pop() ?? "";
    let report: SoakReport;
    try {
      report = JSON.parse(last) as SoakReport;
    } catch {
      throw new Error(`no JSON report (exit ${code}):\n${out}\n${err}`);
    }
    console.log(
      `[reliability] soak (short): ${report.devices} devices, ${report.operations?.reportedAcked} reported patches, ` +
        `${report.operations?.desiredDelivered} desired updates, ${report.operations?.reconnects} reconnects; ` +
        `RSS ${report.rss?.startMB} -> ${report.rss?.endMB} MB (${report.rss?.growthPercent} %), ` +
        `handles ${report.handles?.start} -> ${report.handles?.end}; ${report.failures} failed operations`,
    );
    expect(report.error, err).toBeUndefined();
    expect(report.failureDetails).toEqual([]);
    expect(report.failures).toBe(0);
    expect(report.devices).toBe(100);
    // The load really ran: every kind of operation happened, and every one of them completed.
    expect(report.operations.reportedSent).toBeGreaterThan(50);
    expect(report.operations.reportedAcked).toBe(report.operations.reportedSent);
    expect(report.operations.desiredSent).toBeGreaterThan(20);
    expect(report.operations.desiredDelivered).toBe(report.operations.desiredSent);
    expect(report.operations.reconnects).toBeGreaterThan(10);
    expect(report.operations.twinChecks).toBeGreaterThanOrEqual(100 + report.operations.reconnects);
    expect(report.rss.growthPercent).toBeLessThan(10);
    expect(report.handles.growthPercent).toBeLessThan(10);
    expect(report.ok).toBe(true);
    expect(code).toBe(0);
  }, 150_000);
});
