import type { Client } from "aedes";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createTokenExpiry } from "../../src/hub/mqtt/token-expiry.js";

describe("connections end with their SAS token", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("closes at the expiry, also for tokens valid longer than a timer can wait (~24.8 days)", () => {
    vi.useFakeTimers();
    const closed: string[] = [];
    const expiry = createTokenExpiry((c) => closed.push(c.id));
    const day = 24 * 3600 * 1000;
    const short = { id: "short" } as Client;
    const long = { id: "long" } as Client;
    expiry.arm(short, Date.now() + 3000);
    expiry.arm(long, Date.now() + 60 * day);
    vi.advanceTimersByTime(2999);
    expect(closed).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(closed).toEqual(["short"]);
    vi.advanceTimersByTime(59 * day);
    expect(closed).toEqual(["short"]);
    vi.advanceTimersByTime(day);
    expect(closed).toEqual(["short", "long"]);
    expect(expiry.armed).toBe(0);
  });

  it("forgets a connection that ended first, and closes at once a token already expired", () => {
    vi.useFakeTimers();
    const closed: string[] = [];
    const expiry = createTokenExpiry((c) => closed.push(c.id));
    const gone = { id: "gone" } as Client;
    expiry.arm(gone, Date.now() + 1000);
    expiry.disarm(gone);
    vi.advanceTimersByTime(5000);
    expect(closed).toEqual([]);
    expiry.arm({ id: "late" } as Client, Date.now() - 1);
    expect(closed).toEqual(["late"]);
  });
});
