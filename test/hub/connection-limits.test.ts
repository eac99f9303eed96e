import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, fitToFileLimit, resolveLimits } from "../../src/hub/connection-limits.js";

const limitsText = (soft: number) =>
  [
    "Limit                     Soft Limit           Hard Limit           Units     ",
    "Max processes             63704                63704                processes ",
    `Max open files            ${soft}                20000                files     `,
  ].join("\n");

describe("connection limits", () => {
  it("keep the total cap to half the open-file limit, never above the default", () => {
    expect(fitToFileLimit(10_000, limitsText(1024))).toBe(512);
    expect(fitToFileLimit(10_000, limitsText(1_048_576))).toBe(10_000);
    expect(fitToFileLimit(10_000, undefined)).toBe(10_000);
    expect(fitToFileLimit(10_000, "no such line")).toBe(10_000);
  });

  it("take a subset of options and refuse nonsense", () => {
    const l = resolveLimits({ pendingTimeoutMs: 500 });
    expect(l.pendingTimeoutMs).toBe(500);
    expect(l.keepAliveTimeoutMs).toBe(DEFAULT_LIMITS.keepAliveTimeoutMs);
    expect(l.maxPendingConnections).toBeLessThanOrEqual(l.maxConnections);
    expect(resolveLimits({ maxConnections: 20_000 }).maxConnections).toBe(20_000);
    expect(() => resolveLimits({ idleTimeoutMs: 0 })).toThrow(/positive whole number/);
    expect(() => resolveLimits({ maxConnections: 5, maxPendingConnections: 10 })).toThrow(/must not exceed/);
    expect(() => resolveLimits({ headersTimeoutMs: 10_000, requestTimeoutMs: 5_000 })).toThrow(/at least/);
    expect(() => resolveLimits({ bogus: 1 } as never)).toThrow(/unknown connection limit bogus/);
  });
});
