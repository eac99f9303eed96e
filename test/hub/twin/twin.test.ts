import { describe, expect, it } from "vitest";
import { HubError } from "../../../src/hub/errors.js";
import { applyChange, emptyTwin, LIMITS, twinEtag, validatePatch } from "../../../src/hub/twin/twin.js";

const T0 = "2026-01-01T00:00:00.000Z";
const T1 = "2026-01-01T00:00:01.000Z";

function statusOf(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof HubError ? e.status : -1;
  }
  return undefined;
}

describe("twin semantics", () => {
  it("merges patches, deletes on null, and bumps section and twin versions once per change", () => {
    const t0 = emptyTwin(T0);
    const t1 = applyChange(t0, { desired: { a: { b: 1, c: 2 }, keep: true } }, T1);
    expect(t1.desired.props).toEqual({ a: { b: 1, c: 2 }, keep: true });
    expect(t1.desired.version).toBe(2);
    expect(t1.version).toBe(2);
    expect(t1.reported.version).toBe(1);
    const t2 = applyChange(t1, { desired: { a: { b: null } }, tags: { x: 1 } }, T1);
    expect(t2.desired.props).toEqual({ a: { c: 2 }, keep: true });
    expect(t2.tags).toEqual({ x: 1 });
    expect(t2.version).toBe(3);
    // The original is untouched: a failed change cannot leave half-applied state behind.
    expect(t1.desired.props).toEqual({ a: { b: 1, c: 2 }, keep: true });
  });

  it("drops nulls inside newly added objects (merge-patch rule)", () => {
    const t = applyChange(emptyTwin(T0), { reported: { a: { b: null, c: 1 } } }, T1);
    expect(t.reported.props).toEqual({ a: { c: 1 } });
  });

  it("keeps $metadata in step: $lastUpdated everywhere, $lastUpdatedVersion in desired only", () => {
    const t = applyChange(
      emptyTwin(T0),
      { desired: { loc: { plant: "P" } }, reported: { conn: "wifi" } },
      T1,
    );
    const dm = t.desired.meta as Record<string, Record<string, unknown>>;
    expect(dm.$lastUpdated).toBe(T1);
    expect(dm.loc).toMatchObject({
      $lastUpdated: T1,
      $lastUpdatedVersion: 2,
      plant: { $lastUpdated: T1, $lastUpdatedVersion: 2 },
    });
    const rm = t.reported.meta as Record<string, Record<string, unknown>>;
    expect(rm.conn).toEqual({ $lastUpdated: T1 });
    const removed = applyChange(t, { desired: { loc: null } }, T1);
    expect((removed.desired.meta as Record<string, unknown>).loc).toBeUndefined();
  });

  it("replace (PUT) swaps tags and desired wholesale", () => {
    const t1 = applyChange(emptyTwin(T0), { tags: { a: 1 }, desired: { x: 1 } }, T1);
    const t2 = applyChange(t1, { tags: { b: 2 }, desired: { y: 2 }, replace: true }, T1);
    expect(t2.tags).toEqual({ b: 2 });
    expect(t2.desired.props).toEqual({ y: 2 });
  });

  it("rejects invalid names, deep nesting, big strings, huge integers and oversize sections with 400", () => {
    for (const key of ["a.b", "$a", "a b", "a\u0001", ""])
      expect(statusOf(() => validatePatch("tags", { [key]: 1 }))).toBe(400);
    let deep: Record<string, unknown> = { v: 1 };
    for (let i = 0; i < LIMITS.depth; i++) deep = { n: deep };
    expect(statusOf(() => validatePatch("desired", deep))).toBe(400);
    let ok: Record<string, unknown> = { v: 1 };
    for (let i = 0; i < LIMITS.depth - 1; i++) ok = { n: ok };
    expect(statusOf(() => validatePatch("desired", ok))).toBeUndefined();
    expect(statusOf(() => validatePatch("desired", { s: "x".repeat(LIMITS.stringBytes + 1) }))).toBe(400);
    expect(statusOf(() => validatePatch("desired", { n: LIMITS.maxInteger + 2 }))).toBe(400);
    expect(statusOf(() => validatePatch("desired", [1]))).toBe(400);
    const fat: Record<string, string> = {};
    for (let i = 0; i < 3; i++) fat[`k${i}`] = "y".repeat(3000);
    expect(statusOf(() => applyChange(emptyTwin(T0), { tags: fat }, T1))).toBe(400);
    expect(statusOf(() => applyChange(emptyTwin(T0), { desired: fat }, T1))).toBeUndefined();
  });

  it("makes IoT Hub-shaped etags that change with the version", () => {
    expect(twinEtag(1)).toBe("AAAAAAAAAAE=");
    expect(twinEtag(2)).not.toBe(twinEtag(1));
  });
});
