import { describe, expect, it } from "vitest";
import { TakeoverDetector } from "../../src/device/takeover.js";

describe("TakeoverDetector", () => {
  it("three drops of an established connection within 30 s: taken over", () => {
    const d = new TakeoverDetector();
    expect(d.dropped(0)).toBe(false);
    d.connected();
    expect(d.dropped(1000)).toBe(false);
    d.connected();
    expect(d.dropped(2000)).toBe(true);
  });

  it("a hub that is down: one drop, then failed attempts that are not drops", () => {
    const d = new TakeoverDetector();
    expect(d.dropped(0)).toBe(false);
    for (let t = 1; t < 100; t++) expect(d.dropped(t * 100)).toBe(false);
    expect(d.recentDrops).toBe(1);
  });

  it("drops far apart (a flaky network) are not a takeover", () => {
    const d = new TakeoverDetector();
    for (let i = 0; i < 10; i++) {
      expect(d.dropped(i * 31_000)).toBe(false);
      d.connected();
    }
  });
});
