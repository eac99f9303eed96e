import { describe, expect, it } from "vitest";
import {
  type CompiledQuery,
  compileQuery,
  MAX_QUERY_LENGTH,
  QueryError,
  runQueryPage,
} from "../../../src/hub/query/index.js";
import { MemorySource, makeTwin } from "./fixture.js";
import { idsOf, runAll } from "./helpers.js";

const rows = (query: string, source: MemorySource) => runAll(query, source).items;
const ids = (where: string, source: MemorySource) =>
  idsOf(runAll(`SELECT * FROM devices WHERE ${where}`, source).items);

describe("property names", () => {
  const source = new MemorySource([
    makeTwin("a", { tags: JSON.parse('{"constructor": "own", "__proto__": {"x": 1}, "Color": "red"}') }),
    makeTwin("b", { tags: { color: "blue", temp: 1, Temp: 2 } }),
    makeTwin("c", { tags: { COLOR: "green" } }),
  ]);

  it("never reads inherited members of Object.prototype", () => {
    expect(ids("IS_DEFINED(tags.toString)", source)).toEqual([]);
    expect(ids("IS_DEFINED(tags.hasOwnProperty)", source)).toEqual([]);
    expect(ids("IS_DEFINED(tags.constructor)", source)).toEqual(["a"]);
    expect(ids("tags.CONSTRUCTOR = 'own'", source)).toEqual(["a"]);
    expect(ids("tags.__proto__.x = 1", source)).toEqual(["a"]);
    expect(ids("IS_DEFINED(deviceId.length)", source)).toEqual([]);
  });

  it("projects own keys named like Object.prototype members as plain properties", () => {
    const [row] = rows(
      "SELECT tags.__proto__, tags.constructor AS __proto__x FROM devices WHERE deviceId = 'a'",
      source,
    );
    expect(Object.getPrototypeOf(row)).toBe(Object.prototype);
    expect(JSON.stringify(row)).toBe('{"__proto__":{"x":1},"__proto__x":"own"}');
  });

  it("matches names case-insensitively per twin and names projections with each twin's spelling", () => {
    expect(ids("tags.color IN ['red', 'blue', 'green']", source)).toEqual(["a", "b", "c"]);
    expect(rows("SELECT tags.color FROM devices", source)).toEqual([
      { Color: "red" },
      { color: "blue" },
      { COLOR: "green" },
    ]);
    expect(ids("tags.temp = 1", source)).toEqual(["b"]); // the exact spelling wins
    expect(ids("tags.Temp = 2", source)).toEqual(["b"]);
    expect(ids("tags.TEMP IN [1, 2]", source)).toEqual(["b"]);
  });

  it("accepts keywords and [[quoted names]] as aliases", () => {
    expect(
      rows("SELECT COUNT() AS count, COUNT() AS top, COUNT() AS [[my count]] FROM devices", source),
    ).toEqual([{ count: 3, top: 3, "my count": 3 }]);
  });
});

describe("values", () => {
  const source = new MemorySource([
    makeTwin("a", { tags: { loc: { x: 1, y: 2 }, n: 1, s: "1e3", big: 10 } }),
    makeTwin("b", { tags: { loc: { y: 2, x: 1 }, n: "1", s: " 1" } }),
    makeTwin("c", { tags: { loc: { x: 2 }, n: 1, s: "0x10" } }),
  ]);

  it("groups objects by content and keeps numbers apart from numeric strings", () => {
    const byLoc = rows("SELECT tags.loc AS loc, COUNT() AS n FROM devices GROUP BY tags.loc", source);
    expect(byLoc).toEqual([
      { loc: { x: 1, y: 2 }, n: 2 },
      { loc: { x: 2 }, n: 1 },
    ]);
    const byN = rows("SELECT tags.n AS v, COUNT() AS n FROM devices GROUP BY tags.n", source);
    expect(byN).toEqual([
      { v: 1, n: 2 },
      { v: "1", n: 1 },
    ]);
  });

  it("gives undefined for results JSON cannot hold and for wrongly typed arguments", () => {
    expect(
      rows(
        "SELECT POWER(tags.big, 400) AS p, tags.big / 0 AS q, CONCAT(deviceId, tags.n) AS c FROM devices WHERE deviceId = 'a'",
        source,
      ),
    ).toEqual([{}]);
    expect(
      rows(
        "SELECT SUBSTRING(deviceId, -3, 2) AS s, SUBSTRING('abc', 1, -1) AS e FROM devices WHERE deviceId = 'a'",
        source,
      ),
    ).toEqual([{ s: "a", e: "" }]);
  });

  it("AS_NUMBER converts JSON number text only", () => {
    expect(rows("SELECT AS_NUMBER(tags.s) AS v FROM devices", source)).toEqual([{ v: 1000 }, {}, {}]);
  });

  it("aggregates skip missing values; MIN/MAX order null < false < true < numbers < strings", () => {
    expect(
      rows(
        "SELECT MIN(tags.n) AS lo, MAX(tags.n) AS hi, SUM(tags.n) AS s, AVG(tags.n) AS a FROM devices",
        source,
      ),
    ).toEqual([{ lo: 1, hi: "1", s: 2, a: 1 }]);
  });
});

describe("API contract", () => {
  const source = new MemorySource([makeTwin("a")]);

  it("throws QueryError (an Error with name, kind and 1-based position)", () => {
    try {
      compileQuery("SELECT * FROM devices WHERE ?");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(Error);
      expect(e).toBeInstanceOf(QueryError);
      expect((e as QueryError).name).toBe("QueryError");
      expect((e as QueryError).kind).toBe("query");
      expect((e as QueryError).position).toBe(29);
    }
  });

  it("rejects input that is not a string and queries it did not compile", () => {
    expect(() => compileQuery(undefined as unknown as string)).toThrow(QueryError);
    expect(() => compileQuery(42 as unknown as string)).toThrow(QueryError);
    const fake = { text: "SELECT * FROM devices", itemType: "twin", aggregate: false } as CompiledQuery;
    expect(() => runQueryPage(fake, source, {})).toThrow(QueryError);
  });

  it("accepts exactly 8192 characters", () => {
    const base = "SELECT * FROM devices WHERE deviceId = ''";
    const text = `${base.slice(0, -1)}${"x".repeat(MAX_QUERY_LENGTH - base.length)}'`;
    expect(text).toHaveLength(MAX_QUERY_LENGTH);
    expect(runQueryPage(compileQuery(text), source, {}).items).toEqual([]);
    expect(() => compileQuery(`${text} `)).toThrow(/at most 8192/);
  });

  it("reports the item type and whether pages slice an aggregate", () => {
    expect(compileQuery("SELECT * FROM devices")).toMatchObject({ itemType: "twin", aggregate: false });
    expect(compileQuery("SELECT deviceId FROM devices")).toMatchObject({
      itemType: "raw",
      aggregate: false,
    });
    expect(compileQuery("SELECT COUNT() FROM devices")).toMatchObject({ itemType: "raw", aggregate: true });
  });

  it("allows long OR chains (they stay flat)", () => {
    const list = Array.from({ length: 300 }, (_, i) => `deviceId = 'd${i}'`).join(" OR ");
    expect(
      runQueryPage(compileQuery(`SELECT * FROM devices WHERE ${list} OR deviceId = 'a'`), source, {}).items,
    ).toHaveLength(1);
  });
});
