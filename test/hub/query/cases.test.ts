import { describe, expect, it } from "vitest";
import { compileQuery, QueryError } from "../../../src/hub/query/index.js";
import { CASES, ERROR_CASES } from "./cases.js";
import { FIXTURE, MemorySource } from "./fixture.js";
import { idsOf, runAll } from "./helpers.js";

const source = new MemorySource(FIXTURE);
const sortJson = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).sort();

describe("query cases over the fixture", () => {
  it("has at least 80 cases", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(80);
  });

  it.each(CASES.map((c) => [c.query.replace(/\s+/g, " "), c] as const))("%s", (_, c) => {
    const q = compileQuery(c.query);
    // Small pages, so every case also walks continuation tokens
    for (const pageSize of [undefined, 2]) {
      const { items, pages } = runAll(q, source, pageSize);
      if (c.ids) {
        expect(q.itemType).toBe("twin");
        expect(pages.every((p) => p.itemType === "twin")).toBe(true);
        expect(idsOf(items)).toEqual(c.ids);
        // SELECT * returns the twin documents themselves
        for (const t of items) expect(FIXTURE).toContain(t);
      } else {
        expect(q.itemType).toBe("raw");
        expect(pages.every((p) => p.itemType === "raw")).toBe(true);
        if (c.anyOrder) expect(sortJson(items)).toEqual(sortJson(c.rows!));
        else expect(items).toEqual(c.rows);
      }
    }
  });

  it("does not modify the twins", () => {
    const before = JSON.stringify(FIXTURE);
    for (const c of CASES) runAll(c.query, source, 3);
    expect(JSON.stringify(FIXTURE)).toBe(before);
  });
});

describe("query errors", () => {
  it.each(ERROR_CASES.map((c) => [c.query.slice(0, 100).replace(/\s+/g, " "), c] as const))("%s", (_, c) => {
    let error: unknown;
    try {
      compileQuery(c.query);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(QueryError);
    expect((error as QueryError).message).toMatch(c.message);
    expect((error as QueryError).kind).toBe("query");
  });

  it("reports a 1-based position matching the column of single-line queries", () => {
    try {
      compileQuery("SELECT * FROM devices WHERE x = = 1");
      expect.unreachable();
    } catch (e) {
      expect((e as QueryError).position).toBe(33);
      expect((e as QueryError).message).toBe(
        "Invalid query at line 1, column 33: expected an expression but found '='",
      );
    }
  });

  it("counts lines and columns in multi-line queries", () => {
    expect(() => compileQuery("SELECT *\nFROM devices\n  WHERE tags.x = 'a' AND")).toThrow(
      /line 3, column 25: expected an expression but found end of query/,
    );
  });
});
