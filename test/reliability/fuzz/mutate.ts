import type { Rng } from "./rng.js";

/**
 * Byte- and text-level mutations. Each returns the mutated value and the name of what it did, so a case's
 * description says exactly how its input was damaged.
 */

export interface Mutated<T> {
  value: T;
  how: string;
}

/** Bytes that often sit on parser edges. */
const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x10, 0x30, 0x82, 0xc0, 0xe0, 0x25, 0x22, 0x7b];

export function mutateBytes(rng: Rng, input: Buffer): Mutated<Buffer> {
  const b = Buffer.from(input);
  if (b.length === 0) return { value: rng.bytes(rng.int(1, 16)), how: "random bytes for empty input" };
  const at = () => rng.int(0, b.length - 1);
  switch (rng.int(0, 7)) {
    case 0: {
      const n = rng.int(1, 4);
      const spots: number[] = [];
      for (let i = 0; i < n; i++) {
        const p = at();
        b[p] ^= 1 << rng.int(0, 7);
        spots.push(p);
      }
      return { value: b, how: `bit flips at ${spots.join(",")}` };
    }
    case 1: {
      const cut = rng.int(0, b.length - 1);
      return { value: b.subarray(0, cut), how: `truncated to ${cut} of ${b.length} bytes` };
    }
    case 2: {
      const p = at();
      const v = rng.pick(INTERESTING);
      b[p] = v;
      return { value: b, how: `byte ${p} set to 0x${v.toString(16)}` };
    }
    case 3: {
      const s = at();
      const e = rng.int(s, Math.min(b.length, s + 64));
      return {
        value: Buffer.concat([b.subarray(0, e), b.subarray(s, e), b.subarray(e)]),
        how: `bytes ${s}..${e} duplicated`,
      };
    }
    case 4: {
      const s = at();
      const e = rng.int(s, Math.min(b.length, s + 32));
      return { value: Buffer.concat([b.subarray(0, s), b.subarray(e)]), how: `bytes ${s}..${e} deleted` };
    }
    case 5: {
      const p = rng.int(0, b.length);
      const junk = rng.bytes(rng.int(1, 32));
      return {
        value: Buffer.concat([b.subarray(0, p), junk, b.subarray(p)]),
        how: `${junk.length} random bytes inserted at ${p}`,
      };
    }
    case 6: {
      const tail = rng.bytes(rng.int(1, 200));
      return { value: Buffer.concat([b, tail]), how: `${tail.length} random bytes appended` };
    }
    default: {
      const s = at();
      const n = rng.int(1, 16);
      for (let i = s; i < Math.min(b.length, s + n); i++) b[i] = rng.int(0, 255);
      return { value: b, how: `${n} bytes randomised at ${s}` };
    }
  }
}

/** Text mutations that keep the result printable-ish (for tokens, paths, header values). */
export function mutateText(rng: Rng, input: string): Mutated<string> {
  if (input.length === 0) return { value: rng.text(rng.int(1, 20)), how: "random text for empty input" };
  const p = rng.int(0, input.length - 1);
  switch (rng.int(0, 6)) {
    case 0: {
      const c = input.charCodeAt(p) ^ (1 << rng.int(0, 6));
      return {
        value: input.slice(0, p) + String.fromCharCode(c) + input.slice(p + 1),
        how: `char ${p} bit-flipped`,
      };
    }
    case 1:
      return { value: input.slice(0, p), how: `cut at ${p}` };
    case 2: {
      const ins = rng.pick(["%", "%E0", "%00", "%zz", "&", "=", "\u0000", "\u00e9", "\ud800", " ", "+", "/"]);
      return {
        value: input.slice(0, p) + ins + input.slice(p),
        how: `${JSON.stringify(ins)} inserted at ${p}`,
      };
    }
    case 3:
      return { value: input.slice(0, p) + input.slice(p + 1), how: `char ${p} deleted` };
    case 4: {
      const e = Math.min(input.length, p + rng.int(1, 20));
      return {
        value: input.slice(0, e) + input.slice(p, e) + input.slice(e),
        how: `chars ${p}..${e} doubled`,
      };
    }
    case 5:
      return { value: input.toUpperCase(), how: "upper-cased" };
    default:
      return { value: input + rng.text(rng.int(1, 40)), how: "random text appended" };
  }
}
