import { describe, expect, it } from "vitest";
import { compileQuery, QueryError, runQueryPage } from "../../../src/hub/query/index.js";
import { CASES, ERROR_CASES } from "./cases.js";
import { FIXTURE, MemorySource } from "./fixture.js";
import { idsOf, runAll } from "./helpers.js";

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick };
}

const source = new MemorySource(FIXTURE);

/** Compiles and runs `text`; anything thrown must be a QueryError with a message. Returns the ids or undefined. */
function attempt(text: string): string[] | undefined {
  try {
    const q = compileQuery(text);
    const { items } = runAll(q, source, 5);
    return q.itemType === "twin" ? idsOf(items) : [];
  } catch (e) {
    if (!(e instanceof QueryError) || e.message.length === 0) {
      throw new Error(`query ${JSON.stringify(text)} threw ${String(e)}`);
    }
    return undefined;
  }
}

const VOCAB = [
  "SELECT",
  "TOP",
  "*",
  "FROM",
  "devices",
  "WHERE",
  "GROUP",
  "BY",
  "AS",
  "AND",
  "OR",
  "NOT",
  "IN",
  "NIN",
  "true",
  "false",
  "null",
  "undefined",
  "(",
  ")",
  "[",
  "]",
  ",",
  ".",
  "=",
  "!=",
  "<>",
  "<",
  "<=",
  ">",
  ">=",
  "+",
  "-",
  "/",
  "%",
  "'US'",
  '"x"',
  "'a\\'b'",
  "0",
  "1",
  "-2.5",
  "0x1F",
  "1e3",
  "tags",
  "properties",
  "reported",
  "desired",
  "location",
  "region",
  "deviceId",
  "$metadata",
  "$version",
  "[[group]]",
  "COUNT()",
  "SUM",
  "AVG",
  "MIN",
  "MAX",
  "IS_DEFINED",
  "STARTSWITH",
  "CONCAT",
  "LOWER",
  "SUBSTRING",
  "status",
  "devices.modules",
  "'",
  '"',
  "\\",
  "[[",
  "]]",
  "\u00e9",
  "\u0000",
  "\n",
  "ORDER",
  "&&",
  "==",
  "!",
  "@",
  "#",
  "`",
  "{",
  "}",
] as const;

const PATHS = [
  "deviceId",
  "status",
  "connectionState",
  "version",
  "lastActivityTime",
  "tags.location.region",
  "tags.Location.Plant",
  "tags.floor",
  "tags.critical",
  "tags.weight",
  "tags.name",
  "tags.location",
  "properties.reported.telemetryConfig.sendFrequencyInSecs",
  "properties.reported.telemetryConfig.status",
  "properties.reported.connectivity",
  "properties.reported.enabled",
  "properties.reported.temperature",
  "properties.reported.$version",
  "properties.desired.telemetryConfig",
  "tags.nothing",
  "tags.[[group]].name",
];
const CONSTS = [
  "'US'",
  "'eu'",
  "'wired'",
  "'2'",
  "'Success'",
  "1",
  "2",
  "3",
  "0",
  "-5",
  "30",
  "2.5",
  "true",
  "false",
  "null",
  "undefined",
  "'dev05'",
];

/** A random expression from the grammar (any type; conditions are whatever it evaluates to). */
function genExpr(r: ReturnType<typeof rng>, depth: number): string {
  const leaf = () => (r.next() < 0.6 ? r.pick(PATHS) : r.pick(CONSTS));
  if (depth <= 0) return leaf();
  switch (r.int(9)) {
    case 0:
      return leaf();
    case 1:
      return `(${genExpr(r, depth - 1)} ${r.pick(["=", "!=", "<>", "<", "<=", ">", ">="])} ${genExpr(r, depth - 1)})`;
    case 2:
      return `(${genExpr(r, depth - 1)} ${r.pick(["AND", "OR"])} ${genExpr(r, depth - 1)})`;
    case 3:
      return `(NOT (${genExpr(r, depth - 1)}))`;
    case 4:
      return `(${genExpr(r, depth - 1)} ${r.pick(["IN", "NIN"])} [${[r.pick(CONSTS), r.pick(CONSTS)].filter((c) => c !== "undefined").join(", ")}])`;
    case 5:
      return `(${genExpr(r, depth - 1)} ${r.pick(["+", "-", "*", "/", "%"])} ${genExpr(r, depth - 1)})`;
    case 6:
      return `${r.pick(["IS_DEFINED", "IS_NULL", "IS_BOOL", "IS_NUMBER", "IS_STRING", "IS_OBJECT", "IS_PRIMITIVE", "LOWER", "UPPER", "LENGTH", "ABS", "SQRT", "AS_NUMBER"])}(${genExpr(r, depth - 1)})`;
    case 7:
      return `${r.pick(["STARTSWITH", "ENDSWITH", "CONTAINS", "CONCAT", "INDEX_OF", "POWER", "SUBSTRING"])}(${genExpr(r, depth - 1)}, ${genExpr(r, depth - 1)})`;
    default:
      return `-${leaf()}`;
  }
}

const ids = (cond: string) => {
  const q = compileQuery(`SELECT * FROM devices WHERE ${cond}`);
  return idsOf(runAll(q, source).items);
};

describe("fuzz", () => {
  it("random token sequences either run or fail with QueryError", () => {
    const r = rng(1);
    let compiled = 0;
    for (let n = 0; n < 3000; n++) {
      const len = 1 + r.int(14);
      const prefix = r.next() < 0.7 ? ["SELECT", "*", "FROM", "devices", "WHERE"].slice(0, 1 + r.int(5)) : [];
      const words = [...prefix];
      for (let i = 0; i < len; i++) words.push(r.pick(VOCAB));
      if (attempt(words.join(r.next() < 0.8 ? " " : "")) !== undefined) compiled++;
    }
    expect(compiled).toBeGreaterThan(0);
  });

  it("truncated, flipped and spliced versions of valid queries either run or fail with QueryError", () => {
    const r = rng(2);
    const seeds = [
      ...CASES.map((c) => c.query),
      ...ERROR_CASES.map((c) => c.query).filter((q) => q.length < 1000),
    ];
    let ran = 0;
    let failed = 0;
    const chars = [
      "'",
      '"',
      "\\",
      "(",
      ")",
      "[",
      "]",
      ".",
      ",",
      "*",
      "=",
      "<",
      ">",
      "!",
      " ",
      "0",
      "x",
      "$",
      "\u00fc",
      "\ud800",
      "\u0000",
      "A",
    ];
    for (let n = 0; n < 4000; n++) {
      let text = r.pick(seeds);
      const edits = 1 + r.int(3);
      for (let e = 0; e < edits; e++) {
        const at = r.int(text.length + 1);
        switch (r.int(5)) {
          case 0:
            text = text.slice(0, at); // truncation
            break;
          case 1:
            text = text.slice(0, at) + r.pick(chars) + text.slice(at + 1); // flip
            break;
          case 2:
            text = text.slice(0, at) + r.pick(chars) + text.slice(at); // insertion
            break;
          case 3:
            text = text.slice(0, at) + text.slice(at + 1 + r.int(5)); // deletion
            break;
          default: {
            const other = r.pick(seeds);
            const from = r.int(other.length);
            text = text.slice(0, at) + other.slice(from, from + 1 + r.int(20)) + text.slice(at); // splice
          }
        }
      }
      if (attempt(text) === undefined) failed++;
      else ran++;
    }
    // both outcomes are exercised
    expect(ran).toBeGreaterThan(200);
    expect(failed).toBeGreaterThan(2000);
  });

  it("generated conditions obey three-valued logic: only true passes WHERE", () => {
    const r = rng(3);
    const all = new Set(idsOf(FIXTURE));
    for (let n = 0; n < 300; n++) {
      const a = genExpr(r, 1 + r.int(3));
      const b = genExpr(r, 1 + r.int(2));
      const A = ids(a);
      const B = new Set(ids(b));
      const notA = ids(`NOT (${a})`);
      expect(A.every((x) => all.has(x))).toBe(true);
      expect(notA.filter((x) => A.includes(x))).toEqual([]); // never both c and NOT c
      expect(ids(`NOT (NOT (${a}))`)).toEqual(A);
      expect(ids(`(${a}) AND (${b})`)).toEqual(A.filter((x) => B.has(x)));
      expect(ids(`(${a}) OR (${b})`)).toEqual([...all].filter((x) => A.includes(x) || B.has(x)));
    }
  });

  it("generated projections and aggregates run", () => {
    const r = rng(4);
    let ran = 0;
    for (let n = 0; n < 500; n++) {
      const items = Array.from({ length: 1 + r.int(3) }, (_, i) => `${genExpr(r, 2)} AS c${i}`);
      if (attempt(`SELECT ${items.join(", ")} FROM devices WHERE ${genExpr(r, 2)}`)) ran++;
      const agg = r.pick(["SUM", "AVG", "MIN", "MAX"]);
      const key = r.pick(PATHS);
      if (
        attempt(
          `SELECT ${key} AS k, ${agg}(${genExpr(r, 1)}) AS v, COUNT() AS n FROM devices GROUP BY ${key}`,
        )
      )
        ran++;
    }
    expect(ran).toBe(1000);
  });

  it("random and mutated continuation tokens either page or fail with QueryError", () => {
    const r = rng(5);
    const queries = ["SELECT * FROM devices", "SELECT status, COUNT() AS n FROM devices GROUP BY status"].map(
      (t) => compileQuery(t),
    );
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ .%";
    for (let n = 0; n < 2000; n++) {
      const q = r.pick(queries);
      let token = runQueryPage(q, source, { pageSize: 1 }).continuation!;
      if (r.next() < 0.3) token = Array.from({ length: r.int(80) }, () => r.pick([...alphabet])).join("");
      else {
        const at = r.int(token.length);
        token = token.slice(0, at) + r.pick([...alphabet]) + token.slice(at + (r.next() < 0.5 ? 1 : 0));
      }
      try {
        runQueryPage(q, source, { pageSize: 1 + r.int(5), continuation: token });
      } catch (e) {
        if (!(e instanceof QueryError) || !e.message) throw new Error(`token ${token} threw ${String(e)}`);
      }
    }
  });
});
