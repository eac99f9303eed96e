import { describe, expect, it } from "vitest";
import { jsonBytesUpTo } from "../../../src/hub/query/budget.js";
import {
  compileQuery,
  QUERY_LIMITS,
  QueryError,
  runQueryPage,
  runQueryPageAsync,
} from "../../../src/hub/query/index.js";
import { MemorySource, makeTwin } from "./fixture.js";

const utf8 = (v: unknown) => Buffer.byteLength(JSON.stringify(v), "utf8");

/** Twins whose tags hold `kb` KB of text each. */
function bigSource(count: number, kb: number): MemorySource {
  const text = "x".repeat(1024);
  const tags: Record<string, string> = {};
  for (let i = 0; i < kb; i++) tags[`t${i}`] = text;
  return new MemorySource(
    Array.from({ length: count }, (_, i) => makeTwin(`dev${String(i).padStart(5, "0")}`, { tags })),
  );
}

describe("jsonBytesUpTo", () => {
  it("is never below the real UTF-8 JSON size, and close to it for plain data", () => {
    const samples: unknown[] = [
      null,
      true,
      12.5,
      -0,
      "plain",
      'quote " and back\\slash',
      "control \u0001 and line\u2028sep",
      "ünïcödé 😀",
      [1, "a", null, [2, { b: false }]],
      { a: 1, 'ké"y': ["x", { deep: { deeper: "value" } }], empty: {}, list: [] },
      makeTwin("dev1", { tags: { location: { plant: "Redmond43" } } }),
    ];
    for (const v of samples) {
      const real = utf8(v);
      const estimate = jsonBytesUpTo(v, 1e9);
      expect(estimate, JSON.stringify(v)).toBeGreaterThanOrEqual(real);
    }
    const twin = makeTwin("dev1", { tags: { location: { plant: "Redmond43" } } });
    expect(jsonBytesUpTo(twin, 1e9)).toBeLessThan(utf8(twin) * 1.2);
  });

  it("stops walking once past the limit", () => {
    const huge = Array.from({ length: 100_000 }, () => ({ k: "v".repeat(100) }));
    const estimate = jsonBytesUpTo(huge, 10_000);
    expect(estimate).toBeGreaterThan(10_000);
    expect(estimate).toBeLessThan(10_000 + 1000);
  });
});

describe("query evaluation limits", () => {
  // a 4 KB string: the largest a twin property may hold ("Maximum size of each individual property ... is 4 KB")
  const source = new MemorySource([makeTwin("a", { tags: { s: "abc", big: "y".repeat(4096) } })]);
  const copies = (n: number) => Array(n).fill("tags.big").join(", ");

  it("refuses a CONCAT whose result would exceed the string limit, before building it", () => {
    // 17 x 4 KB = 68 K characters, past the 64 K limit
    const q = compileQuery(`SELECT CONCAT(${copies(17)}) AS v FROM devices`);
    expect(() => runQueryPage(q, source)).toThrow(QueryError);
    expect(() => runQueryPage(q, source)).toThrow(/CONCAT would build a string of 69632 characters/);
    // nesting does not get around it
    const nested = compileQuery(
      `SELECT * FROM devices WHERE LENGTH(CONCAT(CONCAT(${copies(10)}), CONCAT(${copies(10)}))) > 0`,
    );
    expect(() => runQueryPage(nested, source)).toThrow(/CONCAT would build a string/);
  });

  it("refuses a query that builds too many characters of strings for one twin", () => {
    // five strings of 60 K: each under the single-string limit, together over the 256 K per-twin budget
    const items = Array.from({ length: 5 }, (_, i) => `LENGTH(CONCAT(${copies(15)})) AS n${i}`).join(", ");
    const q = compileQuery(`SELECT ${items} FROM devices`);
    expect(() => runQueryPage(q, source)).toThrow(/more than 262144 characters of strings per twin/);
    // four of them fit
    const fits = Array.from({ length: 4 }, (_, i) => `LENGTH(CONCAT(${copies(15)})) AS n${i}`).join(", ");
    expect(runQueryPage(compileQuery(`SELECT ${fits} FROM devices`), source).items).toEqual([
      { n0: 61440, n1: 61440, n2: 61440, n3: 61440 },
    ]);
  });

  it("still runs ordinary string functions", () => {
    const q = compileQuery("SELECT CONCAT(UPPER(tags.s), '-', SUBSTRING(tags.s, 1)) AS v FROM devices");
    expect(runQueryPage(q, source).items).toEqual([{ v: "ABC-bc" }]);
  });
});

describe("page size in bytes", () => {
  it("splits big twins over pages that each stay under the byte limit, every twin once", async () => {
    // 60 twins of about 200 KB: 12 MB in all, at most about 20 per 4 MB page.
    const source = bigSource(60, 200);
    const q = compileQuery("SELECT * FROM devices");
    const seen: string[] = [];
    let continuation: string | undefined;
    let pages = 0;
    do {
      const page = await runQueryPageAsync(q, source, { pageSize: 100, continuation });
      pages++;
      expect(utf8(page.items)).toBeLessThanOrEqual(QUERY_LIMITS.pageBytes);
      seen.push(...page.items.map((t) => (t as { deviceId: string }).deviceId));
      continuation = page.continuation;
    } while (continuation);
    expect(pages).toBeGreaterThanOrEqual(3);
    expect(seen).toHaveLength(60);
    expect(new Set(seen).size).toBe(60);
  });

  it("refuses a projection whose single row is larger than a page", () => {
    const source = bigSource(1, 30);
    const items = Array.from({ length: 200 }, (_, i) => `tags AS t${i}`).join(", ");
    const q = compileQuery(`SELECT ${items} FROM devices`);
    expect(() => runQueryPage(q, source)).toThrow(/a result row is larger than the 4 MB page limit/);
  });

  it("slices aggregate results by bytes too", async () => {
    const source = bigSource(40, 200);
    // one group per twin, each row carrying its 200 KB tags
    const q = compileQuery("SELECT tags, COUNT() AS n FROM devices GROUP BY tags");
    let continuation: string | undefined;
    let rows = 0;
    do {
      const page = await runQueryPageAsync(q, source, { continuation });
      expect(utf8(page.items)).toBeLessThanOrEqual(QUERY_LIMITS.pageBytes);
      rows += page.items.length;
      continuation = page.continuation;
    } while (continuation);
    expect(rows).toBe(1); // all twins share the same tags: one group
  });
});

describe("page JSON", () => {
  it("is the items serialized, for row, projection and aggregate pages", async () => {
    const source = bigSource(30, 1);
    for (const text of [
      "SELECT * FROM devices",
      "SELECT deviceId, tags.t0 AS t FROM devices",
      "SELECT COUNT() AS n, tags.t0 AS t FROM devices GROUP BY tags.t0",
    ]) {
      let continuation: string | undefined;
      do {
        const page = await runQueryPageAsync(compileQuery(text), source, { pageSize: 7, continuation });
        expect(JSON.parse(page.json)).toEqual(page.items);
        continuation = page.continuation;
      } while (continuation);
    }
  });
});
