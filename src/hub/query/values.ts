/**
 * Value semantics of the query language. JSON values plus `undefined` (a missing property), kept
 * distinct from `null` as the docs do ("Any constant different than Boolean true is considered as
 * false. This rule includes null, undefined, ..."). Operators on mismatched or non-primitive operands
 * yield undefined, which no WHERE clause accepts.
 */

export type Value = unknown;

export function isPrimitive(v: Value): boolean {
  return v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean";
}

export function isObject(v: Value): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * "Comparisons are supported only between primitive types (no objects)": same-type primitives compare,
 * anything else (objects, undefined, a number against a numeric string) is undefined.
 */
export function equals(a: Value, b: Value): boolean | undefined {
  const t = typeof a;
  if (t !== typeof b) return undefined;
  if (t === "string" || t === "number" || t === "boolean") return a === b;
  if (a === null && b === null) return true;
  return undefined;
}

/** Ordering of same-type primitives: numbers, strings (ordinal), booleans (false < true); else undefined. */
export function order(a: Value, b: Value): number | undefined {
  const t = typeof a;
  if (t !== typeof b) return undefined;
  if (t === "number" || t === "string" || t === "boolean") {
    return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
  }
  if (a === null && b === null) return 0;
  return undefined;
}

/** Arithmetic is defined on numbers only; non-finite results (x / 0) have no JSON form and become undefined. */
export function finite(n: number): number | undefined {
  return Number.isFinite(n) ? n : undefined;
}

/** Rank of a primitive's type for MIN/MAX over mixed values: null < false < true < numbers < strings. */
function typeRank(v: Value): number {
  if (v === null) return 0;
  if (typeof v === "boolean") return 1;
  if (typeof v === "number") return 2;
  return 3;
}

/** Total order over primitives, used by MIN and MAX. */
export function totalOrder(a: Value, b: Value): number {
  const ra = typeRank(a);
  const rb = typeRank(b);
  if (ra !== rb) return ra - rb;
  if (a === b) return 0;
  return (a as number) < (b as number) ? -1 : 1;
}

/** A string that is equal for equal grouping values (GROUP BY); objects compare by content. */
export function groupKey(v: Value): string {
  switch (typeof v) {
    case "undefined":
      return "u";
    case "string":
      return `s${v}`;
    case "number":
      return `d${v}`;
    case "boolean":
      return v ? "t" : "f";
    default:
      return v === null ? "n" : `o${stableJson(v)}`;
  }
}

function stableJson(v: Value): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(",")}]`;
  if (isObject(v)) {
    const keys = Object.keys(v).sort();
    // own values only (a "__proto__" key read as v[k] would be the prototype)
    const at = (k: string) => Object.getOwnPropertyDescriptor(v, k)?.value as Value;
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson(at(k))}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}
