import { mutateBytes } from "./mutate.js";
import type { Rng } from "./rng.js";

/**
 * Random JSON as text (written by hand, so keys like `__proto__` reach the hub exactly as sent): ordinary
 * twin-like objects, prototype-pollution shapes, deep nesting, huge numbers, odd strings. The pollution
 * shapes always carry the key `POLLUTION_KEY`, which the probe in the hub process watches for.
 */

/** The property name every pollution attempt tries to plant on a prototype. */
export const POLLUTION_KEY = "fuzzPolluted";

const KEYS = [
  "a",
  "b",
  "temperature",
  "connectivity",
  "tags",
  "properties",
  "desired",
  "reported",
  "location",
  "x.y",
  "$version",
  "$metadata",
  "",
  " ",
  "k\u0000",
  "\u00e9t\u00e9",
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "valueOf",
];

const NUMBERS = [
  "0",
  "-0",
  "1",
  "-1",
  "1.5",
  "1e308",
  "-1e308",
  "1e400",
  "-1e400",
  "4503599627370495",
  "4503599627370496",
  "9007199254740993",
  "123456789012345678901234567890123456789",
  "0.0000000000000000000000000001",
  "1E+2",
  "5e-324",
];

const STRINGS = [
  '""',
  '"x"',
  '"\\u0000"',
  '"\\ud800"',
  '"\\udfff\\ud800"',
  '"\\"quoted\\""',
  '"\u00e9\u4e2d\ud83d\ude00"',
  '"<script>"',
  '"%E0"',
  '"null"',
];

export function jsonString(s: string): string {
  return JSON.stringify(s);
}

/** A random JSON value as text, `depth` levels at most. */
export function randomJson(rng: Rng, depth = 3): string {
  const kind = depth <= 0 ? rng.int(0, 3) : rng.int(0, 6);
  switch (kind) {
    case 0:
      return rng.pick(NUMBERS);
    case 1:
      return rng.chance(0.7) ? rng.pick(STRINGS) : jsonString(rng.text(rng.int(0, 60)));
    case 2:
      return rng.pick(["true", "false", "null"]);
    case 3:
      return jsonString(rng.text(rng.int(0, 10)));
    case 4:
      return `[${Array.from({ length: rng.int(0, 4) }, () => randomJson(rng, depth - 1)).join(",")}]`;
    default:
      return randomObject(rng, depth - 1);
  }
}

export function randomObject(rng: Rng, depth = 2): string {
  const n = rng.int(0, 4);
  const fields: string[] = [];
  for (let i = 0; i < n; i++) {
    const key = rng.chance(0.6) ? rng.pick(KEYS) : rng.text(rng.int(1, 12));
    fields.push(`${jsonString(key)}:${randomJson(rng, depth)}`);
  }
  return `{${fields.join(",")}}`;
}

/** `{"__proto__": {"fuzzPolluted": ...}}` and its relatives, optionally wrapped under `under`. */
export function pollution(rng: Rng, tag: string): string {
  const value = `{${jsonString(POLLUTION_KEY)}:${jsonString(tag)}}`;
  const shapes = [
    `{"__proto__":${value}}`,
    `{"constructor":{"prototype":${value}}}`,
    `{"a":{"__proto__":${value}}}`,
    `{"__proto__":{"__proto__":${value}}}`,
    `{"prototype":${value}}`,
    `{"__proto__":[1,2]}`,
    `{"__proto__":null}`,
    `{"__proto__":{"toString":1,"valueOf":"x",${jsonString(POLLUTION_KEY)}:1}}`,
  ];
  return rng.pick(shapes);
}

/** `[[[...1...]]]` or `{"a":{"a":...}}`, `levels` deep. */
export function deepNesting(rng: Rng, levels: number): string {
  if (rng.chance(0.5)) return `${"[".repeat(levels)}1${"]".repeat(levels)}`;
  return `${'{"a":'.repeat(levels)}1${"}".repeat(levels)}`;
}

export function hugeArray(rng: Rng, items: number): string {
  const item = rng.pick(["1", "null", '"x"', "{}", "[]"]);
  return `[${Array.from({ length: items }, () => item).join(",")}]`;
}

/**
 * A payload for the hub to parse: a twin-ish patch, a pollution attempt, deep nesting, a huge array or
 * number, or any of those damaged at byte level. Returns the text and how it was made.
 */
export function randomPayload(
  rng: Rng,
  tag: string,
  wrap: (inner: string) => string = (s) => s,
): {
  body: Buffer;
  how: string;
} {
  const shape = rng.weighted<string>([
    [4, "object"],
    [3, "pollution"],
    [1, "deep"],
    [1, "huge-array"],
    [1, "huge-number"],
    [1, "empty"],
    [1, "value"],
  ]);
  let text: string;
  switch (shape) {
    case "pollution":
      text = wrap(pollution(rng, tag));
      break;
    case "deep":
      text = wrap(deepNesting(rng, rng.pick([6, 11, 100, 5000, 100_000])));
      break;
    case "huge-array":
      text = wrap(`{"a":${hugeArray(rng, rng.pick([100, 10_000, 60_000]))}}`);
      break;
    case "huge-number":
      text = wrap(`{"a":${rng.pick(NUMBERS)},"b":${"9".repeat(rng.pick([20, 400, 5000]))}}`);
      break;
    case "empty":
      text = "";
      break;
    case "value":
      text = randomJson(rng, 2);
      break;
    default:
      text = wrap(randomObject(rng, 3));
  }
  let body: Buffer = Buffer.from(text, "utf8");
  let how = shape;
  if (rng.chance(0.25)) {
    const m = mutateBytes(rng, body);
    body = m.value;
    how += ` (${m.how})`;
  }
  return { body, how };
}
