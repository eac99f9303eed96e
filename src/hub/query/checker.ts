import type { BinaryOp, Expr, ParsedQuery, PathExpr } from "./ast.js";
import { errorAt } from "./errors.js";
import { AGGREGATES, type AggregateName, FUNCTIONS, type FunctionDef } from "./functions.js";

/** Checked expression: paths normalised, calls resolved to a function or an aggregate slot. */
export type CExpr =
  | { type: "literal"; value: unknown }
  | { type: "path"; segments: string[] }
  | { type: "neg"; arg: CExpr }
  | { type: "not"; arg: CExpr }
  | { type: "binary"; op: BinaryOp; left: CExpr; right: CExpr }
  | { type: "logical"; op: "AND" | "OR"; args: CExpr[] }
  | { type: "in"; negate: boolean; arg: CExpr; list: unknown[] }
  | { type: "fn"; def: FunctionDef; args: CExpr[] }
  | { type: "agg"; slot: number };

export interface CAggregate {
  name: AggregateName;
  arg?: CExpr;
}

export interface CItem {
  expr: CExpr;
  /** Output property name: the alias, `$1`..`$n` for unnamed expressions, undefined for an unaliased path
   *  (named after the property the path ends at, with the twin's spelling). */
  name?: string;
}

export interface CheckedQuery {
  text: string;
  /** twins: SELECT *; rows: per-twin projections; groups: aggregates and/or GROUP BY */
  kind: "twins" | "rows" | "groups";
  top?: number;
  where?: CExpr;
  items: CItem[];
  groupBy: string[][];
  aggregates: CAggregate[];
}

type Context = "where" | "select" | "aggregate-arg";

/** Resolves names and checks the rules the grammar alone does not express. */
export function checkQuery(q: ParsedQuery): CheckedQuery {
  const text = q.text;
  const aggregates: CAggregate[] = [];
  const groupBy = (q.groupBy ?? []).map((p) => normalizePath(p));

  const check = (e: Expr, ctx: Context): CExpr => {
    switch (e.type) {
      case "literal":
        return { type: "literal", value: e.value };
      case "path":
        return { type: "path", segments: normalizePath(e) };
      case "neg":
        return { type: "neg", arg: check(e.arg, ctx) };
      case "not":
        return { type: "not", arg: check(e.arg, ctx) };
      case "binary":
        return { type: "binary", op: e.op, left: check(e.left, ctx), right: check(e.right, ctx) };
      case "logical":
        return { type: "logical", op: e.op, args: e.args.map((a) => check(a, ctx)) };
      case "in":
        return { type: "in", negate: e.negate, arg: check(e.arg, ctx), list: e.list };
      case "call": {
        const agg = AGGREGATES.get(e.name);
        if (agg) {
          if (ctx === "where") throw errorAt(text, e.pos, `aggregate ${e.name}() is not allowed in WHERE`);
          if (ctx === "aggregate-arg") {
            throw errorAt(text, e.pos, `aggregate ${e.name}() cannot be nested inside another aggregate`);
          }
          arity(e, agg.min, agg.max);
          const slot = aggregates.length;
          aggregates.push({ name: e.name as AggregateName });
          if (e.args[0]) aggregates[slot]!.arg = check(e.args[0], "aggregate-arg");
          return { type: "agg", slot };
        }
        const def = FUNCTIONS.get(e.name);
        if (!def) {
          const known = [...FUNCTIONS.keys(), ...AGGREGATES.keys()].sort().join(", ");
          throw errorAt(text, e.pos, `unknown function '${e.name}'; expected one of ${known}`);
        }
        arity(e, def.min, def.max);
        return { type: "fn", def, args: e.args.map((a) => check(a, ctx)) };
      }
    }
  };

  const arity = (e: Extract<Expr, { type: "call" }>, min: number, max: number) => {
    const n = e.args.length;
    if (n >= min && n <= max) return;
    const want =
      min === max ? `${min}` : max === Number.POSITIVE_INFINITY ? `at least ${min}` : `${min} to ${max}`;
    throw errorAt(
      text,
      e.pos,
      `${e.name}() takes ${want} argument${want === "1" ? "" : "s"} but was given ${n}`,
    );
  };

  const where = q.where ? check(q.where, "where") : undefined;

  if (!q.items) {
    if (q.groupBy)
      throw errorAt(
        text,
        q.starPos,
        "SELECT * cannot be used with GROUP BY; select the grouped properties and aggregates",
      );
    return { text, kind: "twins", top: q.top, where, items: [], groupBy, aggregates };
  }

  const items: CItem[] = [];
  const seen = new Map<string, number>();
  let unnamed = 0;
  for (const item of q.items) {
    const expr = check(item.expr, "select");
    let name = item.alias;
    let key: string;
    if (name !== undefined) key = name.toLowerCase();
    else if (item.expr.type === "path") key = normalizePath(item.expr).at(-1)!.toLowerCase();
    else {
      // Unnamed non-path projections are called $1, $2, ... (e.g. SELECT COUNT() FROM devices gives {"$1": n})
      name = `$${++unnamed}`;
      key = name;
    }
    if (seen.has(key)) {
      const shown = name ?? (item.expr.type === "path" ? normalizePath(item.expr).at(-1) : key);
      throw errorAt(
        text,
        item.pos,
        `the output property '${shown}' is produced twice; use AS to give a different name`,
      );
    }
    seen.set(key, item.pos);
    items.push({ expr, name });
  }

  const grouped = aggregates.length > 0 || q.groupBy !== undefined;
  if (grouped) {
    // Outside aggregates, a grouped query can only use the values it groups by.
    const groupKeys = new Set(groupBy.map((p) => p.join(".").toLowerCase()));
    q.items.forEach((item) => {
      const bad = firstUngroupedPath(item.expr, groupKeys);
      if (bad) {
        const hint = q.groupBy
          ? "add it to GROUP BY or use it inside an aggregate"
          : "use it inside an aggregate or add GROUP BY";
        throw errorAt(text, bad.pos, `'${bad.segments.join(".")}' is not grouped; ${hint}`);
      }
    });
  }
  return { text, kind: grouped ? "groups" : "rows", top: q.top, where, items, groupBy, aggregates };
}

/** The collection name may prefix a path (devices.tags.x); twins have no top-level "devices" property. */
function normalizePath(p: PathExpr): string[] {
  const s = p.segments;
  return s.length > 1 && s[0]!.toLowerCase() === "devices" ? s.slice(1) : s;
}

function firstUngroupedPath(e: Expr, groupKeys: Set<string>): PathExpr | undefined {
  switch (e.type) {
    case "literal":
      return undefined;
    case "path":
      return groupKeys.has(normalizePath(e).join(".").toLowerCase()) ? undefined : e;
    case "neg":
    case "not":
      return firstUngroupedPath(e.arg, groupKeys);
    case "binary":
      return firstUngroupedPath(e.left, groupKeys) ?? firstUngroupedPath(e.right, groupKeys);
    case "in":
      return firstUngroupedPath(e.arg, groupKeys);
    case "logical":
      for (const a of e.args) {
        const bad = firstUngroupedPath(a, groupKeys);
        if (bad) return bad;
      }
      return undefined;
    case "call":
      if (AGGREGATES.has(e.name)) return undefined;
      for (const a of e.args) {
        const bad = firstUngroupedPath(a, groupKeys);
        if (bad) return bad;
      }
      return undefined;
  }
}
