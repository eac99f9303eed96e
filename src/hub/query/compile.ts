import type { CExpr, CheckedQuery, CItem } from "./checker.js";
import type { AggregateName } from "./functions.js";
import { equals, finite, groupKey, isPrimitive, order, totalOrder, type Value } from "./values.js";

/**
 * Compiles a checked query into closures, once per query: evaluating a twin is then a few property
 * loads and comparisons, with no tree walking and no string lowering in the hot path.
 */

// biome-ignore lint/suspicious/noExplicitAny: evaluators take a twin or a group
export type Eval = (input: any) => Value;

/** Names an object inherits from Object.prototype: for these a plain property read is not proof of an own key. */
const INHERITED = new Set(Object.getOwnPropertyNames(Object.prototype));

function own(o: Record<string, unknown>, k: string): Value {
  // JSON.parse makes "__proto__" an own key, which o[k] would not read
  return k === "__proto__" ? Object.getOwnPropertyDescriptor(o, k)?.value : o[k];
}

/** One step of a property path. Names match case-insensitively ("property names are case-insensitive"). */
class Segment {
  readonly lower: string;
  /** A plain read suffices: JSON never holds undefined, so a defined value is an own key. */
  readonly plain: boolean;
  /** The spelling that matched last time: twins share their shape, so this almost always hits. */
  private hint: string | undefined;

  constructor(readonly name: string) {
    this.lower = name.toLowerCase();
    this.plain = !INHERITED.has(name);
  }

  /** The value under this name in `o` when a plain read of the exact spelling found nothing. */
  slow(o: Record<string, unknown>): Value {
    const k = this.keyIn(o);
    return k === undefined ? undefined : own(o, k);
  }

  /** The own key of `o` this segment names, if any. */
  keyIn(o: Record<string, unknown>): string | undefined {
    if (Object.hasOwn(o, this.name)) return this.name;
    const h = this.hint;
    if (h !== undefined && Object.hasOwn(o, h)) return h;
    const lower = this.lower;
    for (const k in o) {
      if (k.length === lower.length && k.toLowerCase() === lower && Object.hasOwn(o, k)) {
        this.hint = k;
        return k;
      }
    }
    return undefined;
  }
}

function isContainer(o: unknown): o is Record<string, unknown> {
  return typeof o === "object" && o !== null && !Array.isArray(o);
}

export interface PathAccess {
  get: (root: unknown) => Value;
  /** The value and the key it sits under in the twin (for naming unaliased projections). */
  entry: (root: unknown) => [key: string, value: Value] | undefined;
}

export function compilePath(names: string[]): PathAccess {
  const segs = names.map((n) => new Segment(n));
  const get = generateGetter(segs);
  const lastSeg = segs.at(-1)!;
  const parent = segs.length === 1 ? (root: unknown) => root : generateGetter(segs.slice(0, -1));
  const entry = (root: unknown): [string, Value] | undefined => {
    const p = parent(root);
    if (!isContainer(p)) return undefined;
    const k = lastSeg.keyIn(p);
    return k === undefined ? undefined : [k, own(p, k)];
  };
  return { get, entry };
}

/**
 * A getter whose property reads name their keys literally (`o["tags"]`), generated per query: every read
 * site then sees only the twin shapes of its own path and stays monomorphic, where one shared getter
 * turns megamorphic once a hub has served a few different queries (about 3x slower over 100,000 twins).
 * Names enter the code only as JSON string literals.
 */
function generateGetter(segs: Segment[]): (root: unknown) => Value {
  let body = "let v = root;\n";
  segs.forEach((s, i) => {
    body += 'if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;\n';
    // exact spelling, then the spelling that matched last time (h<i>), then a case-insensitive scan
    body += s.plain
      ? `{ const o = v; v = o[${JSON.stringify(s.name)}];
  if (v === undefined && (h${i} === undefined || (v = o[h${i}]) === undefined)) {
    const k = s${i}.keyIn(o); if (k === undefined) return undefined;
    v = own(o, k); if (PLAIN(k)) h${i} = k;
  } }\n`
      : `v = s${i}.slow(v); if (v === undefined) return undefined;\n`;
  });
  const params = segs.map((_, i) => `s${i}`);
  const hints = segs.map((_, i) => `h${i}`).join(", ");
  // Plain reads (o["tags"]) find only own properties while Object.prototype holds nothing but its standard
  // names (the inherited ones go through Segment.slow, which checks Object.hasOwn). `GUARD.polluted` is true
  // when it holds anything else: every getter then takes the own-property path for every segment.
  const factory = new Function(
    "own",
    "PLAIN",
    "GUARD",
    "safe",
    ...params,
    `"use strict"; let ${hints}; return function get(root) {\nif (GUARD.polluted) return safe(root);\n${body}return v;\n};`,
  );
  const safe = (root: unknown): Value => {
    let v: Value = root;
    for (const s of segs) {
      if (!isContainer(v)) return undefined;
      v = s.slow(v);
      if (v === undefined) return undefined;
    }
    return v;
  };
  return factory(own, isPlainName, GUARD, safe, ...segs) as (root: unknown) => Value;
}

const GUARD = { polluted: false };

/**
 * Checks Object.prototype before a query runs: if anything has added a property to it (prototype pollution, which
 * the twin code itself refuses at the root), property reads switch to own-property checks, so no inherited value
 * is ever taken for a twin's property. One check per page instead of one per property read keeps scans fast.
 */
export function guardPrototype(): void {
  GUARD.polluted = Object.getOwnPropertyNames(Object.prototype).some((n) => !INHERITED.has(n));
}

function isPlainName(k: string): boolean {
  return !INHERITED.has(k);
}

/** Group evaluation input: a representative twin (for GROUP BY values) and the aggregate results. */
export interface Group {
  rep: unknown;
  accs: Accumulator[];
  results: Value[];
}

type Mode = "row" | "group";

export function compileExpr(e: CExpr, mode: Mode): Eval {
  switch (e.type) {
    case "literal": {
      const v = e.value;
      return () => v;
    }
    case "path": {
      const { get } = compilePath(e.segments);
      return mode === "row" ? get : (g: Group) => get(g.rep);
    }
    case "agg": {
      const slot = e.slot;
      return (g: Group) => g.results[slot];
    }
    case "neg": {
      const a = compileExpr(e.arg, mode);
      return (t) => {
        const v = a(t);
        return typeof v === "number" ? -v : undefined;
      };
    }
    case "not": {
      const a = compileExpr(e.arg, mode);
      return (t) => {
        const v = a(t);
        return v === true ? false : v === false ? true : undefined;
      };
    }
    case "logical":
      return compileLogical(
        e.op,
        e.args.map((a) => compileExpr(a, mode)),
      );
    case "in": {
      const a = compileExpr(e.arg, mode);
      const set = new Set(e.list.filter(isPrimitive));
      const negate = e.negate;
      return (t) => {
        const v = a(t);
        if (!isPrimitive(v)) return undefined;
        return set.has(v) !== negate;
      };
    }
    case "fn": {
      const args = e.args.map((a) => compileExpr(a, mode));
      const { impl, variadic } = e.def;
      if (variadic) return (t) => variadic(args.map((a) => a(t)));
      const f = impl!;
      const [a0, a1, a2] = args;
      if (args.length === 1) return (t) => f(a0!(t), undefined, undefined);
      if (args.length === 2) return (t) => f(a0!(t), a1!(t), undefined);
      return (t) => f(a0!(t), a1!(t), a2!(t));
    }
    case "binary":
      return compileBinary(e, mode);
  }
}

function compileLogical(op: "AND" | "OR", fs: Eval[]): Eval {
  // Three-valued logic: false AND x = false, true OR x = true, otherwise any non-Boolean operand gives undefined.
  if (op === "AND") {
    return (t) => {
      let unknown = false;
      for (const f of fs) {
        const v = f(t);
        if (v === false) return false;
        if (v !== true) unknown = true;
      }
      return unknown ? undefined : true;
    };
  }
  return (t) => {
    let unknown = false;
    for (const f of fs) {
      const v = f(t);
      if (v === true) return true;
      if (v !== false) unknown = true;
    }
    return unknown ? undefined : false;
  };
}

function compileBinary(e: Extract<CExpr, { type: "binary" }>, mode: Mode): Eval {
  const l = compileExpr(e.left, mode);
  const r = compileExpr(e.right, mode);
  switch (e.op) {
    case "=": {
      // Fast path for the common "path = constant" filter.
      if (e.right.type === "literal" && e.right.value !== null && isPrimitive(e.right.value)) {
        const c = e.right.value;
        const type = typeof c;
        return (t) => {
          const v = l(t);
          return typeof v === type ? v === c : undefined;
        };
      }
      return (t) => equals(l(t), r(t));
    }
    case "!=":
      return (t) => {
        const eq = equals(l(t), r(t));
        return eq === undefined ? undefined : !eq;
      };
    case "<":
      return (t) => {
        const o = order(l(t), r(t));
        return o === undefined ? undefined : o < 0;
      };
    case "<=":
      return (t) => {
        const o = order(l(t), r(t));
        return o === undefined ? undefined : o <= 0;
      };
    case ">":
      return (t) => {
        const o = order(l(t), r(t));
        return o === undefined ? undefined : o > 0;
      };
    case ">=":
      return (t) => {
        const o = order(l(t), r(t));
        return o === undefined ? undefined : o >= 0;
      };
    default: {
      const op = e.op;
      const apply =
        op === "+"
          ? (a: number, b: number) => a + b
          : op === "-"
            ? (a: number, b: number) => a - b
            : op === "*"
              ? (a: number, b: number) => a * b
              : op === "/"
                ? (a: number, b: number) => a / b
                : (a: number, b: number) => a % b;
      return (t) => {
        const a = l(t);
        const b = r(t);
        return typeof a === "number" && typeof b === "number" ? finite(apply(a, b)) : undefined;
      };
    }
  }
}

/**
 * Aggregates. Undefined (missing) values are skipped. SUM and AVG use numbers only; MIN and MAX take any
 * primitive, ordered null < false < true < numbers < strings. With no usable value the result is undefined
 * and the property is left out of the row; COUNT() counts the group's twins.
 */
export interface Accumulator {
  add(v: Value): void;
  result(): Value;
}

function makeAccumulator(name: AggregateName): Accumulator {
  switch (name) {
    case "COUNT": {
      let n = 0;
      return { add: () => void n++, result: () => n };
    }
    case "SUM":
    case "AVG": {
      let sum = 0;
      let n = 0;
      const avg = name === "AVG";
      return {
        add: (v) => {
          if (typeof v === "number") {
            sum += v;
            n++;
          }
        },
        result: () => (n === 0 ? undefined : finite(avg ? sum / n : sum)),
      };
    }
    case "MIN":
    case "MAX": {
      let best: Value;
      let has = false;
      const sign = name === "MIN" ? 1 : -1;
      return {
        add: (v) => {
          if (!isPrimitive(v)) return;
          if (!has || sign * totalOrder(v, best) < 0) {
            best = v;
            has = true;
          }
        },
        result: () => (has ? best : undefined),
      };
    }
  }
}

/** One run of an aggregate query: twins go in one at a time (so the runner can pause between them). */
export interface GroupRun {
  add(twin: unknown): void;
  /** The result rows; `beforeEach` runs before each row is evaluated. */
  rows(beforeEach?: () => void): unknown[];
}

/** The executable form of a query. */
export interface Plan {
  kind: CheckedQuery["kind"];
  top?: number;
  /** true only for a twin that passes WHERE ("must evaluate the specified conditions to true") */
  accept: (twin: unknown) => boolean;
  /** rows: twin -> projected object */
  project: (twin: unknown) => unknown;
  /** groups: a fresh aggregation; feed it every twin, then take its rows */
  startGroups: () => GroupRun;
  /** Set when the query is just COUNT() of all twins: the row for a count the source's size answers. */
  countRow?: (count: number) => unknown;
}

export function buildPlan(q: CheckedQuery): Plan {
  const where = q.where ? compileExpr(q.where, "row") : undefined;
  const accept = where ? (t: unknown) => where(t) === true : () => true;
  const mode: Mode = q.kind === "groups" ? "group" : "row";
  const project = q.kind === "rows" ? compileRow(q.items, mode) : (t: unknown) => t;
  const groups = q.kind === "groups" ? compileGroups(q, accept) : undefined;
  const countOnly =
    groups !== undefined &&
    !where &&
    q.groupBy.length === 0 &&
    q.items.length === 1 &&
    q.items[0]!.expr.type === "agg" &&
    q.aggregates.length === 1 &&
    q.aggregates[0]!.name === "COUNT";
  return {
    kind: q.kind,
    top: q.top,
    accept,
    project,
    startGroups: groups ? groups.start : () => ({ add: () => {}, rows: () => [] }),
    countRow: countOnly ? groups.countRow : undefined,
  };
}

/** An object with one property per SELECT item; undefined values are left out. */
function compileRow(items: CItem[], mode: Mode): (input: unknown) => Record<string, unknown> {
  const parts = items.map((item) => {
    if (item.name === undefined && item.expr.type === "path") {
      // Unaliased path: named like the property it ends at, spelled as in the twin
      // (the docs' "SELECT DeviceId, LastActivityTime" returns "deviceId" and "lastActivityTime").
      const { entry } = compilePath(item.expr.segments);
      const pick = mode === "row" ? entry : (g: Group) => entry(g.rep);
      return { name: undefined, value: undefined, pick };
    }
    return { name: item.name!, value: compileExpr(item.expr, mode), pick: undefined };
  });
  return (input) => {
    const row: Record<string, unknown> = {};
    for (const p of parts) {
      if (p.pick) {
        const e = p.pick(input as Group);
        if (e && e[1] !== undefined) setKey(row, e[0], e[1]);
      } else {
        const v = p.value!(input);
        if (v !== undefined) setKey(row, p.name, v);
      }
    }
    return row;
  };
}

function setKey(row: Record<string, unknown>, k: string, v: Value): void {
  // a "__proto__" key must become a property, not the row's prototype
  if (k === "__proto__")
    Object.defineProperty(row, k, { value: v, enumerable: true, writable: true, configurable: true });
  else row[k] = v;
}

function compileGroups(
  q: CheckedQuery,
  accept: (t: unknown) => boolean,
): { start: () => GroupRun; countRow: (count: number) => unknown } {
  const keyGetters = q.groupBy.map((p) => compilePath(p).get);
  const aggs = q.aggregates.map((a) => ({
    name: a.name,
    arg: a.arg ? compileExpr(a.arg, "row") : undefined,
  }));
  const row = compileRow(q.items, "group");
  const newGroup = (rep: unknown): Group => ({
    rep,
    accs: aggs.map((a) => makeAccumulator(a.name)),
    results: [],
  });
  const single = keyGetters.length === 1 ? keyGetters[0]! : undefined;
  const countRow = (count: number) => row({ rep: undefined, accs: [], results: [count] });
  const start = (): GroupRun => {
    // "For each group, a row is generated"; without GROUP BY there is exactly one group, even when empty.
    // Primitive keys index `byValue` directly (a Map tells 1 from "1"); objects and key lists go by a string.
    const byValue = new Map<unknown, Group>();
    const byString = new Map<string, Group>();
    const ordered: Group[] = [];
    if (keyGetters.length === 0) ordered.push(newGroup(undefined));
    const add = (t: unknown) => {
      if (!accept(t)) return;
      let g: Group | undefined;
      if (keyGetters.length === 0) g = ordered[0];
      else {
        let map: Map<unknown, Group> = byValue;
        let key: unknown;
        if (single) {
          key = single(t);
          if (typeof key === "object" && key !== null) {
            map = byString as Map<unknown, Group>;
            key = groupKey(key);
          }
        } else {
          map = byString as Map<unknown, Group>;
          key = JSON.stringify(keyGetters.map((k) => groupKey(k(t))));
        }
        g = map.get(key);
        if (!g) {
          g = newGroup(t);
          map.set(key, g);
          ordered.push(g);
        }
      }
      for (let i = 0; i < aggs.length; i++) {
        const arg = aggs[i]!.arg;
        g!.accs[i]!.add(arg ? arg(t) : undefined);
      }
    };
    const rows = (beforeEach?: () => void) =>
      ordered.map((g) => {
        beforeEach?.();
        g.results = g.accs.map((a) => a.result());
        return row(g);
      });
    return { add, rows };
  };
  return { start, countRow };
}
