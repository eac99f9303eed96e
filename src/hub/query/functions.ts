import { charged, checkStringLength } from "./budget.js";
import { finite, isObject, isPrimitive, type Value } from "./values.js";

/**
 * Built-in functions. The docs list IS_DEFINED for twin queries and, for routing conditions, the math,
 * type-checking and string functions below ("Expressions and conditions" > "Functions"); this hub accepts
 * all of them in twin queries. A function given arguments of the wrong type returns undefined.
 */
export interface FunctionDef {
  name: string;
  min: number;
  max: number;
  /** Fixed-arity implementation; unused parameters are undefined. */
  impl?: (a: Value, b: Value, c: Value) => Value;
  /** Variadic implementation (CONCAT). */
  variadic?: (args: Value[]) => Value;
}

const num = (f: (x: number) => number) => (a: Value) => (typeof a === "number" ? finite(f(a)) : undefined);
const str = (f: (s: string) => Value) => (a: Value) => (typeof a === "string" ? f(a) : undefined);
const str2 = (f: (s: string, t: string) => Value) => (a: Value, b: Value) =>
  typeof a === "string" && typeof b === "string" ? f(a, b) : undefined;

// A JSON number, as AS_NUMBER accepts it ("Undefined if string doesn't represent a number")
const NUMBER_TEXT = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

const defs: FunctionDef[] = [
  // Type checking: IS_DEFINED "returns a Boolean indicating if the property has been assigned a value (including null)"
  { name: "IS_DEFINED", min: 1, max: 1, impl: (a) => a !== undefined },
  { name: "IS_NULL", min: 1, max: 1, impl: (a) => a === null },
  { name: "IS_BOOL", min: 1, max: 1, impl: (a) => typeof a === "boolean" },
  { name: "IS_NUMBER", min: 1, max: 1, impl: (a) => typeof a === "number" },
  { name: "IS_STRING", min: 1, max: 1, impl: (a) => typeof a === "string" },
  { name: "IS_OBJECT", min: 1, max: 1, impl: (a) => isObject(a) },
  { name: "IS_ARRAY", min: 1, max: 1, impl: (a) => Array.isArray(a) },
  { name: "IS_PRIMITIVE", min: 1, max: 1, impl: (a) => isPrimitive(a) },
  {
    name: "AS_NUMBER",
    min: 1,
    max: 1,
    impl: (a) =>
      typeof a === "number"
        ? a
        : typeof a === "string" && NUMBER_TEXT.test(a)
          ? finite(Number(a))
          : undefined,
  },
  // Math
  { name: "ABS", min: 1, max: 1, impl: num(Math.abs) },
  { name: "EXP", min: 1, max: 1, impl: num(Math.exp) },
  {
    name: "POWER",
    min: 2,
    max: 2,
    impl: (a, b) => (typeof a === "number" && typeof b === "number" ? finite(a ** b) : undefined),
  },
  { name: "SQUARE", min: 1, max: 1, impl: num((x) => x * x) },
  { name: "CEILING", min: 1, max: 1, impl: num(Math.ceil) },
  { name: "FLOOR", min: 1, max: 1, impl: num(Math.floor) },
  { name: "SIGN", min: 1, max: 1, impl: num(Math.sign) },
  { name: "SQRT", min: 1, max: 1, impl: num(Math.sqrt) },
  // Strings; SUBSTRING and INDEX_OF positions are zero-based
  {
    name: "CONCAT",
    min: 2,
    max: Number.POSITIVE_INFINITY,
    variadic: (args) => {
      // The length is checked before the string is built: nested CONCATs must not grow without bound.
      let length = 0;
      for (const a of args) {
        if (typeof a !== "string") return undefined;
        length += a.length;
      }
      checkStringLength(length, "CONCAT");
      return args.join("");
    },
  },
  { name: "LENGTH", min: 1, max: 1, impl: str((s) => s.length) },
  { name: "LOWER", min: 1, max: 1, impl: str((s) => charged(s.toLowerCase(), "LOWER")) },
  { name: "UPPER", min: 1, max: 1, impl: str((s) => charged(s.toUpperCase(), "UPPER")) },
  {
    name: "SUBSTRING",
    min: 2,
    max: 3,
    impl: (s, start, length) => {
      if (typeof s !== "string" || typeof start !== "number") return undefined;
      if (length !== undefined && typeof length !== "number") return undefined;
      const from = Math.max(0, Math.trunc(start));
      const len = length === undefined ? s.length : Math.max(0, Math.trunc(length));
      return charged(s.substring(from, from + len), "SUBSTRING");
    },
  },
  { name: "INDEX_OF", min: 2, max: 2, impl: str2((s, f) => s.indexOf(f)) },
  { name: "STARTSWITH", min: 2, max: 2, impl: str2((s, f) => s.startsWith(f)) },
  { name: "ENDSWITH", min: 2, max: 2, impl: str2((s, f) => s.endsWith(f)) },
  { name: "CONTAINS", min: 2, max: 2, impl: str2((s, f) => s.includes(f)) },
];

export const FUNCTIONS = new Map<string, FunctionDef>(defs.map((d) => [d.name, d]));
// Older revisions of the docs spell these STARTS_WITH / ENDS_WITH.
FUNCTIONS.set("STARTS_WITH", FUNCTIONS.get("STARTSWITH")!);
FUNCTIONS.set("ENDS_WITH", FUNCTIONS.get("ENDSWITH")!);

/** <aggregate> ::= count() | avg(e) | sum(e) | min(e) | max(e) */
export const AGGREGATES = new Map<string, { min: number; max: number }>([
  ["COUNT", { min: 0, max: 0 }],
  ["SUM", { min: 1, max: 1 }],
  ["AVG", { min: 1, max: 1 }],
  ["MIN", { min: 1, max: 1 }],
  ["MAX", { min: 1, max: 1 }],
]);

export type AggregateName = "COUNT" | "SUM" | "AVG" | "MIN" | "MAX";
