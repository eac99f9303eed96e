import { describe, expect, it } from "vitest";
import {
  compileQuery,
  DEFAULT_PAGE_SIZE,
  MAX_PAGE_SIZE,
  QueryError,
  runQueryPage,
} from "../../../src/hub/query/index.js";
import { MemorySource, makeTwin } from "./fixture.js";
import { idsOf, runAll } from "./helpers.js";

const id = (i: number) => `d${String(i).padStart(5, "0")}`;
const twinAt = (i: number) => makeTwin(id(i), { tags: { bucket: i % 250, parity: i % 2 ? "odd" : "even" } });
const N = 2500;
const all = Array.from({ length: N }, (_, i) => twinAt(i));
const allIds = all.map((t) => t.deviceId);

function expectUnique(ids: string[]) {
  expect(new Set(ids).size).toBe(ids.length);
}

describe("paging", () => {
  it("uses IoT Hub's documented maximum page size of 100, also as the default", () => {
    expect(MAX_PAGE_SIZE).toBe(100);
    expect(DEFAULT_PAGE_SIZE).toBe(100);
    const q = compileQuery("SELECT * FROM devices");
    const source = new MemorySource(all);
    expect(runQueryPage(q, source, {}).items).toHaveLength(100);
    expect(runQueryPage(q, source, { pageSize: 1000 }).items).toHaveLength(100);
    expect(runQueryPage(q, source, { pageSize: 7.9 }).items).toHaveLength(7);
    for (const bad of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(runQueryPage(q, source, { pageSize: bad }).items).toHaveLength(DEFAULT_PAGE_SIZE);
    }
  });

  it.each([1, 7, 100, 1000])(
    "page size %i returns each of 2,500 twins exactly once, in order",
    (pageSize) => {
      const { items, pages } = runAll("SELECT * FROM devices", new MemorySource(all), pageSize);
      expect(idsOf(items)).toEqual(allIds);
      const size = Math.min(pageSize, MAX_PAGE_SIZE);
      expect(pages).toHaveLength(Math.ceil(N / size));
      expect(pages.slice(0, -1).every((p) => p.items.length === size && p.continuation)).toBe(true);
      expect(pages.at(-1)!.continuation).toBeUndefined();
      expect(pages.at(-1)!.items.length).toBeGreaterThan(0);
    },
  );

  it.each([1, 7, 100])("page size %i over a filter and a projection", (pageSize) => {
    const source = new MemorySource(all);
    const { items } = runAll("SELECT deviceId FROM devices WHERE tags.parity = 'odd'", source, pageSize);
    expect(items).toEqual(allIds.filter((_, i) => i % 2).map((deviceId) => ({ deviceId })));
  });

  it("has no continuation when nothing matches or exactly a page matches", () => {
    const source = new MemorySource(all);
    expect(runQueryPage(compileQuery("SELECT * FROM devices WHERE false"), source, {})).toEqual({
      items: [],
      json: "[]",
      itemType: "twin",
    });
    const q = compileQuery("SELECT * FROM devices WHERE tags.bucket = 3");
    const page = runQueryPage(q, source, { pageSize: 10 });
    expect(page.items).toHaveLength(10);
    expect(page.continuation).toBeUndefined();
    expect(runQueryPage(q, new MemorySource([]), {}).items).toEqual([]);
  });

  it.each([1, 7, 100])(
    "page size %i: twins added and removed between pages are returned at most once",
    (pageSize) => {
      const source = new MemorySource(all.filter((_, i) => i % 3 !== 0)); // gaps to insert into
      const addedAhead = new Set<string>();
      const removedAhead = new Set<string>();
      const removedBehind = new Set<string>();
      let round = 0;
      const { items } = runAll("SELECT * FROM devices", source, pageSize, (page) => {
        if (!page.continuation) return;
        const last = (page.items.at(-1) as { deviceId: string }).deviceId;
        const at = Number(last.slice(1));
        round++;
        const ok = (i: number) => i >= 0 && i < N;
        // add one twin ahead of the cursor and one behind it
        const ahead = at + 1 + (round % 5) * 3;
        const behind = at - 1 - (round % 4);
        if (ok(ahead) && ahead % 3 === 0 && !source.has(id(ahead))) {
          source.put(twinAt(ahead));
          addedAhead.add(id(ahead));
        }
        if (ok(behind) && behind % 3 === 0 && !source.has(id(behind))) source.put(twinAt(behind));
        // remove a twin ahead of the cursor (never to be returned) and one already returned
        const gone = at + 2 + (round % 7);
        if (ok(gone) && source.has(id(gone)) && !addedAhead.has(id(gone))) {
          source.remove(id(gone));
          removedAhead.add(id(gone));
        }
        if (ok(at - 2)) {
          source.remove(id(at - 2));
          removedBehind.add(id(at - 2));
        }
        // an update to a twin already returned must not bring it back
        source.put(makeTwin(last, { tags: { updated: true } }));
      });
      const ids = idsOf(items);
      expectUnique(ids);
      expect([...ids].sort()).toEqual(ids); // resumes in deviceId order
      const returned = new Set(ids);
      expect(removedAhead.size).toBeGreaterThan(0);
      expect(addedAhead.size).toBeGreaterThan(0);
      for (const d of removedAhead) expect(returned.has(d)).toBe(false);
      for (const d of addedAhead) expect(returned.has(d)).toBe(true);
      // every twin present from start to end was returned
      for (let i = 0; i < N; i++) {
        const d = id(i);
        if (i % 3 !== 0 && !removedAhead.has(d) && !removedBehind.has(d)) expect(returned.has(d)).toBe(true);
      }
    },
  );

  it("counts TOP across pages", () => {
    const source = new MemorySource(all);
    const { items, pages } = runAll("SELECT TOP 250 * FROM devices WHERE tags.parity = 'even'", source, 7);
    expect(idsOf(items)).toEqual(allIds.filter((_, i) => i % 2 === 0).slice(0, 250));
    expect(pages).toHaveLength(36);
    expect(pages.at(-1)!.items).toHaveLength(5);
    expect(pages.at(-1)!.continuation).toBeUndefined();
    const exact = runAll("SELECT TOP 14 deviceId FROM devices", source, 7);
    expect(exact.pages).toHaveLength(2);
    expect(exact.items).toHaveLength(14);
  });

  it("pages GROUP BY results by offset, each group once", () => {
    const source = new MemorySource(all);
    const query = "SELECT tags.bucket AS bucket, COUNT() AS n FROM devices GROUP BY tags.bucket";
    for (const pageSize of [1, 7, 100]) {
      const { items, pages } = runAll(query, source, pageSize);
      expect(items).toHaveLength(250);
      expect(new Set(items.map((r) => (r as { bucket: number }).bucket)).size).toBe(250);
      expect(items.every((r) => (r as { n: number }).n === 10)).toBe(true);
      expect(pages.every((p) => p.itemType === "raw")).toBe(true);
      expect(pages.at(-1)!.continuation).toBeUndefined();
    }
    const top = runAll(`SELECT TOP 20 ${query.slice(7)}`, source, 7);
    expect(top.items).toHaveLength(20);
    expect(top.pages).toHaveLength(3);
  });

  it("answers COUNT() with one row", () => {
    const source = new MemorySource(all);
    expect(runQueryPage(compileQuery("SELECT COUNT() AS n FROM devices"), source, {})).toEqual({
      items: [{ n: N }],
      json: `[{"n":${N}}]`,
      itemType: "raw",
    });
    expect(
      runQueryPage(compileQuery("SELECT COUNT() AS n FROM devices WHERE tags.parity = 'odd'"), source, {})
        .items,
    ).toEqual([{ n: N / 2 }]);
    expect(runQueryPage(compileQuery("SELECT TOP 0 COUNT() AS n FROM devices"), source, {}).items).toEqual(
      [],
    );
  });
});

describe("continuation tokens", () => {
  const source = new MemorySource(all);
  const q = compileQuery("SELECT * FROM devices");
  const token = runQueryPage(q, source, { pageSize: 5 }).continuation!;

  function rejects(query: typeof q, continuation: string, message: RegExp) {
    let error: unknown;
    try {
      runQueryPage(query, source, { continuation });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(QueryError);
    expect((error as QueryError).kind).toBe("continuation");
    expect((error as QueryError).message).toMatch(message);
  }

  it("is opaque, header-safe and resumes the same query", () => {
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(idsOf(runQueryPage(q, source, { pageSize: 2, continuation: token }).items)).toEqual([
      id(5),
      id(6),
    ]);
    // the same text compiled again accepts it (tokens are stateless)
    expect(
      runQueryPage(compileQuery("SELECT * FROM devices"), source, { continuation: token }).items,
    ).toHaveLength(100);
  });

  it("rejects tokens of another query", () => {
    rejects(compileQuery("SELECT * FROM devices WHERE true"), token, /issued for a different query/);
    const agg = compileQuery("SELECT tags.bucket AS b, COUNT() AS n FROM devices GROUP BY tags.bucket");
    const aggToken = runQueryPage(agg, source, { pageSize: 5 }).continuation!;
    rejects(q, aggToken, /different query/);
  });

  it("rejects malformed and forged tokens", () => {
    const forge = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const h = JSON.parse(Buffer.from(token, "base64url").toString()).h;
    for (const bad of [
      "garbage!",
      "a b",
      "%%%",
      "x".repeat(5000),
      Buffer.from("not json").toString("base64url"),
    ]) {
      rejects(q, bad, /Invalid continuation token: it is not a token this hub issued/);
    }
    rejects(q, forge({ v: 2, h, k: "x", n: 1 }), /not a token this hub issued/);
    rejects(q, forge([1, 2]), /not a token this hub issued/);
    rejects(q, forge(null), /not a token this hub issued/);
    rejects(q, forge({ v: 1, h, k: 5, n: 1 }), /malformed/);
    rejects(q, forge({ v: 1, h, k: "x", n: -1 }), /malformed/);
    rejects(q, forge({ v: 1, h, k: "x", n: 1, o: 3 }), /malformed/);
    rejects(q, forge({ v: 1, h, o: 3 }), /does not belong to a row query/);
  });
});
