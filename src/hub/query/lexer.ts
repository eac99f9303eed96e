import { errorAt } from "./errors.js";

export type TokenKind = "ident" | "keyword" | "number" | "string" | "op" | "eof";

export interface Token {
  kind: TokenKind;
  /** ident: the name as written (or inside [[ ]]); keyword: upper case; op: the operator; string: decoded value. */
  value: string;
  /** number tokens only */
  num: number;
  /** 0-based offset of the token's first character */
  pos: number;
  /** the token exactly as written (for messages) */
  raw: string;
  /** ident only: written as [[name]], so never a keyword */
  quoted: boolean;
}

/** Reserved words; "Keywords are case-insensitive" (the docs write them both ways). */
export const KEYWORDS = new Set([
  "SELECT",
  "TOP",
  "FROM",
  "WHERE",
  "GROUP",
  "BY",
  "AS",
  "AND",
  "OR",
  "NOT",
  "IN",
  "NIN",
  "TRUE",
  "FALSE",
  "NULL",
  "UNDEFINED",
]);

const TWO_CHAR_OPS = new Set(["!=", "<>", "<=", ">="]);
const ONE_CHAR_OPS = new Set(["=", "<", ">", "+", "-", "*", "/", "%", "(", ")", "[", "]", ",", "."]);
const IDENT_START = /[\p{L}_$]/u;
const IDENT_PART = /[\p{L}\p{N}_$]/u;
const HEX = /^[0-9a-fA-F]$/;

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

/** Splits query text into tokens; throws QueryError on a character or literal the language does not have. */
export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = text.length;
  const push = (kind: TokenKind, value: string, pos: number, num = 0, quoted = false) =>
    tokens.push({ kind, value, num, pos, raw: text.slice(pos, i), quoted });

  while (i < n) {
    const c = text[i]!;
    if (c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f" || c === "\v" || c === "\u00a0") {
      i++;
      continue;
    }
    const start = i;

    // [[name]]: the docs' escape for property names that collide with keywords, e.g. tags.[[group]].name
    if (c === "[" && text[i + 1] === "[") {
      const end = text.indexOf("]]", i + 2);
      if (end < 0) throw errorAt(text, start, "unterminated [[ ]] property name; expected ']]'");
      const name = text.slice(i + 2, end);
      if (name.length === 0) throw errorAt(text, start, "empty [[ ]] property name");
      i = end + 2;
      push("ident", name, start, 0, true);
      continue;
    }

    if (IDENT_START.test(c)) {
      i++;
      while (i < n && IDENT_PART.test(text[i]!)) i++;
      const word = text.slice(start, i);
      const upper = word.toUpperCase();
      if (KEYWORDS.has(upper)) push("keyword", upper, start);
      else push("ident", word, start);
      continue;
    }

    // decimal_literal (a float in decimal notation) | hexadecimal_literal ('0x' + hex digits)
    if (isDigit(c) || (c === "." && isDigit(text[i + 1]))) {
      let value: number;
      if (c === "0" && (text[i + 1] === "x" || text[i + 1] === "X")) {
        i += 2;
        const digitsStart = i;
        while (i < n && HEX.test(text[i]!)) i++;
        if (i === digitsStart) throw errorAt(text, start, "expected hexadecimal digits after '0x'");
        value = Number.parseInt(text.slice(digitsStart, i), 16);
      } else {
        while (isDigit(text[i])) i++;
        if (text[i] === "." && isDigit(text[i + 1])) {
          i++;
          while (isDigit(text[i])) i++;
        } else if (text[i] === "." && !IDENT_START.test(text[i + 1] ?? "")) {
          i++; // "5." is a float
        }
        if (text[i] === "e" || text[i] === "E") {
          let j = i + 1;
          if (text[j] === "+" || text[j] === "-") j++;
          if (!isDigit(text[j])) throw errorAt(text, i, "expected digits in the exponent of a number");
          i = j;
          while (isDigit(text[i])) i++;
        }
        value = Number(text.slice(start, i));
      }
      if (i < n && IDENT_PART.test(text[i]!)) {
        throw errorAt(text, start, `invalid number '${text.slice(start, i + 1)}'`);
      }
      if (!Number.isFinite(value)) throw errorAt(text, start, "number is too large");
      push("number", text.slice(start, i), start, value);
      continue;
    }

    if (c === "'" || c === '"') {
      i++;
      let out = "";
      for (;;) {
        if (i >= n) throw errorAt(text, start, `unterminated string; expected a closing ${c}`);
        const d = text[i]!;
        if (d === c) {
          i++;
          break;
        }
        if (d === "\\") {
          // "Allowed escapes: \', \", \\, \uXXXX"
          const e = text[i + 1];
          if (e === "'" || e === '"' || e === "\\") {
            out += e;
            i += 2;
          } else if (e === "u") {
            const hex = text.slice(i + 2, i + 6);
            if (hex.length !== 4 || ![...hex].every((h) => HEX.test(h))) {
              throw errorAt(text, i, "invalid \\u escape; expected 4 hexadecimal digits");
            }
            out += String.fromCharCode(Number.parseInt(hex, 16));
            i += 6;
          } else {
            throw errorAt(
              text,
              i,
              `invalid escape '\\${e ?? ""}' in string; allowed escapes are \\' \\" \\\\ and \\uXXXX`,
            );
          }
          continue;
        }
        out += d;
        i++;
      }
      tokens.push({
        kind: "string",
        value: out,
        num: 0,
        pos: start,
        raw: text.slice(start, i),
        quoted: false,
      });
      continue;
    }

    const two = text.slice(i, i + 2);
    if (TWO_CHAR_OPS.has(two)) {
      i += 2;
      push("op", two, start);
      continue;
    }
    if (ONE_CHAR_OPS.has(c)) {
      i++;
      push("op", c, start);
      continue;
    }
    const hint = two === "&&" ? "; use AND" : two === "||" ? "; use OR" : c === "!" ? "; use NOT or !=" : "";
    throw errorAt(text, start, `unexpected character ${JSON.stringify(c)}${hint}`);
  }
  tokens.push({ kind: "eof", value: "", num: 0, pos: n, raw: "", quoted: false });
  return tokens;
}
