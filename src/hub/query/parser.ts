import type { BinaryOp, Expr, ParsedQuery, PathExpr, SelectItem } from "./ast.js";
import { errorAt, QueryError } from "./errors.js";
import { type Token, tokenize } from "./lexer.js";

/** "Query expressions can have a maximum length of 8192 characters." (Queries for IoT Hub device and module twins) */
export const MAX_QUERY_LENGTH = 8192;
/** Guards the recursive descent (nested parentheses, NOT NOT ..., nested calls) against stack exhaustion. */
const MAX_NESTING = 100;
/** Guards left-deep operator chains (a + b + c ...) that are built iteratively but evaluated recursively. */
const MAX_TREE_DEPTH = 200;

const COMPARISON = new Set(["=", "!=", "<>", "<", "<=", ">", ">="]);

function describe(t: Token): string {
  if (t.kind === "eof") return "end of query";
  if (t.kind === "string") return `string ${t.raw}`;
  return `'${t.raw}'`;
}

function depthOf(e: Expr): number {
  return (e as { depth?: number }).depth ?? 1;
}

/** Parses query text into a syntax tree; throws QueryError with position and expectation on bad input. */
export function parseQuery(text: string): ParsedQuery {
  if (typeof text !== "string") throw new QueryError("Invalid query: the query must be a string");
  if (text.trim().length === 0)
    throw new QueryError("Invalid query: the query is empty; expected SELECT ... FROM devices");
  if (text.length > MAX_QUERY_LENGTH) {
    throw new QueryError(
      `Invalid query: the query is ${text.length} characters long; IoT Hub accepts at most ${MAX_QUERY_LENGTH}`,
    );
  }
  return new Parser(text, tokenize(text)).query();
}

class Parser {
  private i = 0;
  private nesting = 0;

  constructor(
    private readonly text: string,
    private readonly tokens: Token[],
  ) {}

  private get t(): Token {
    return this.tokens[this.i]!;
  }

  private fail(expected: string, at: Token = this.t): QueryError {
    return errorAt(this.text, at.pos, `expected ${expected} but found ${describe(at)}`);
  }

  private isKeyword(k: string): boolean {
    return this.t.kind === "keyword" && this.t.value === k;
  }

  private isOp(op: string): boolean {
    return this.t.kind === "op" && this.t.value === op;
  }

  private expectKeyword(k: string, expected = k): Token {
    if (!this.isKeyword(k)) throw this.fail(expected);
    return this.tokens[this.i++]!;
  }

  private expectOp(op: string, expected = `'${op}'`): Token {
    if (!this.isOp(op)) throw this.fail(expected);
    return this.tokens[this.i++]!;
  }

  /** Counts recursion; every recursive production goes through here. */
  private nested<T>(fn: () => T): T {
    if (++this.nesting > MAX_NESTING) {
      throw errorAt(
        this.text,
        this.t.pos,
        `expression is nested too deeply (more than ${MAX_NESTING} levels)`,
      );
    }
    try {
      return fn();
    } finally {
      this.nesting--;
    }
  }

  private node<E extends Expr>(e: E, ...children: Expr[]): E {
    let d = 0;
    for (const c of children) d = Math.max(d, depthOf(c));
    if (d + 1 > MAX_TREE_DEPTH) {
      throw errorAt(
        this.text,
        e.pos,
        `expression is too complex (more than ${MAX_TREE_DEPTH} nested operators)`,
      );
    }
    Object.defineProperty(e, "depth", { value: d + 1, enumerable: false });
    return e;
  }

  // SELECT [TOP n] <projection list> FROM <from> [WHERE <cond>] [GROUP BY <path>, ...]
  query(): ParsedQuery {
    this.expectKeyword("SELECT");
    const q: ParsedQuery = { text: this.text, starPos: -1 };
    if (this.isKeyword("TOP")) {
      this.i++;
      const t = this.t;
      if (t.kind !== "number" || !Number.isSafeInteger(t.num) || t.num < 0) {
        throw this.fail("a non-negative integer after TOP");
      }
      q.top = t.num;
      this.i++;
    }
    if (this.isOp("*")) {
      q.starPos = this.t.pos;
      this.i++;
    } else {
      q.items = [this.selectItem()];
      while (this.isOp(",")) {
        this.i++;
        q.items.push(this.selectItem());
      }
    }
    this.expectKeyword("FROM", q.items ? "',' or FROM" : "FROM");
    this.from();
    if (this.isKeyword("WHERE")) {
      this.i++;
      q.where = this.expr();
    }
    if (this.isKeyword("GROUP")) {
      this.i++;
      this.expectKeyword("BY", "BY after GROUP");
      q.groupBy = [this.groupByPath()];
      while (this.isOp(",")) {
        this.i++;
        q.groupBy.push(this.groupByPath());
      }
    }
    if (this.t.kind !== "eof") {
      const t = this.t;
      if (t.kind === "ident" && !t.quoted && t.value.toUpperCase() === "ORDER") {
        throw errorAt(this.text, t.pos, "ORDER BY is not supported in IoT Hub twin queries");
      }
      const options = [q.where || q.groupBy ? "" : "WHERE", q.groupBy ? "" : "GROUP BY", "end of query"];
      throw this.fail(options.filter(Boolean).join(", "));
    }
    return q;
  }

  private selectItem(): SelectItem {
    const pos = this.t.pos;
    if (this.isOp("*")) throw errorAt(this.text, pos, "'*' cannot be combined with other projections");
    const expr = this.expr();
    const item: SelectItem = { expr, pos };
    if (this.isKeyword("AS")) {
      this.i++;
      const t = this.t;
      // any word after AS is a name, keywords included (e.g. AS count, AS top)
      if (t.kind !== "ident" && t.kind !== "keyword") throw this.fail("an alias name after AS");
      item.alias = t.kind === "keyword" ? t.raw : t.value;
      this.i++;
    }
    return item;
  }

  // "The FROM clause ... must be one of three values: devices, devices.modules, devices.jobs"; only devices here.
  private from(): void {
    const t = this.t;
    if (t.kind !== "ident" || t.quoted) throw this.fail("a collection name (devices)");
    let name = t.value;
    this.i++;
    while (this.isOp(".")) {
      this.i++;
      if (this.t.kind !== "ident" && this.t.kind !== "keyword") throw this.fail("a name after '.'");
      name += `.${this.t.raw}`;
      this.i++;
    }
    const lower = name.toLowerCase();
    if (lower === "devices") return;
    if (lower === "devices.modules" || lower === "devices.jobs") {
      throw errorAt(
        this.text,
        t.pos,
        `FROM ${name} is not supported by this local hub; only device twin queries (FROM devices) are`,
      );
    }
    throw errorAt(this.text, t.pos, `unknown collection '${name}'; expected devices`);
  }

  private groupByPath(): PathExpr {
    const t = this.t;
    if (t.kind !== "ident") throw this.fail("a property path after GROUP BY");
    const path = this.path();
    // <group_by_element> ::= attribute_name | <group_by_element> '.' attribute_name
    if (this.isOp("(")) throw errorAt(this.text, t.pos, "GROUP BY takes property paths, not expressions");
    return path;
  }

  expr(): Expr {
    return this.nested(() => this.or());
  }

  private or(): Expr {
    const first = this.and();
    if (!this.isKeyword("OR")) return first;
    const args = [first];
    while (this.isKeyword("OR")) {
      this.i++;
      args.push(this.and());
    }
    return this.node({ type: "logical", op: "OR", args, pos: first.pos }, ...args);
  }

  private and(): Expr {
    const first = this.not();
    if (!this.isKeyword("AND")) return first;
    const args = [first];
    while (this.isKeyword("AND")) {
      this.i++;
      args.push(this.not());
    }
    return this.node({ type: "logical", op: "AND", args, pos: first.pos }, ...args);
  }

  private not(): Expr {
    if (this.isKeyword("NOT")) {
      const pos = this.t.pos;
      this.i++;
      const arg = this.nested(() => this.not());
      return this.node({ type: "not", arg, pos }, arg);
    }
    return this.comparison();
  }

  private comparison(): Expr {
    const left = this.additive();
    const t = this.t;
    if (t.kind === "op" && COMPARISON.has(t.value)) {
      this.i++;
      const right = this.additive();
      const op = (t.value === "<>" ? "!=" : t.value) as BinaryOp;
      return this.node({ type: "binary", op, left, right, pos: left.pos }, left, right);
    }
    // IN / NIN (not in) take array constants; NOT IN is accepted as a synonym of NIN
    let negate: boolean | undefined;
    if (this.isKeyword("IN")) negate = false;
    else if (this.isKeyword("NIN")) negate = true;
    else if (
      this.isKeyword("NOT") &&
      this.tokens[this.i + 1]?.kind === "keyword" &&
      this.tokens[this.i + 1]?.value === "IN"
    ) {
      negate = true;
      this.i++;
    }
    if (negate === undefined) return left;
    this.i++;
    if (!this.isOp("[")) throw this.fail("an array constant such as ['a', 'b']");
    const list = this.arrayConstant();
    return this.node({ type: "in", negate, arg: left, list, pos: left.pos }, left);
  }

  private additive(): Expr {
    let left = this.multiplicative();
    while (this.isOp("+") || this.isOp("-")) {
      const op = this.t.value as BinaryOp;
      this.i++;
      const right = this.multiplicative();
      left = this.node({ type: "binary", op, left, right, pos: left.pos }, left, right);
    }
    return left;
  }

  private multiplicative(): Expr {
    let left = this.unary();
    while (this.isOp("*") || this.isOp("/") || this.isOp("%")) {
      const op = this.t.value as BinaryOp;
      this.i++;
      const right = this.unary();
      left = this.node({ type: "binary", op, left, right, pos: left.pos }, left, right);
    }
    return left;
  }

  private unary(): Expr {
    if (this.isOp("-") || this.isOp("+")) {
      const t = this.t;
      this.i++;
      const arg = this.nested(() => this.unary());
      if (t.value === "+") return arg;
      if (arg.type === "literal" && typeof arg.value === "number") {
        return { type: "literal", value: -arg.value, pos: t.pos };
      }
      return this.node({ type: "neg", arg, pos: t.pos }, arg);
    }
    return this.primary();
  }

  private primary(): Expr {
    const t = this.t;
    switch (t.kind) {
      case "number":
        this.i++;
        return { type: "literal", value: t.num, pos: t.pos };
      case "string":
        this.i++;
        return { type: "literal", value: t.value, pos: t.pos };
      case "keyword":
        if (t.value === "TRUE" || t.value === "FALSE" || t.value === "NULL" || t.value === "UNDEFINED") {
          this.i++;
          const value =
            t.value === "TRUE" ? true : t.value === "FALSE" ? false : t.value === "NULL" ? null : undefined;
          return { type: "literal", value, pos: t.pos };
        }
        throw this.fail("an expression");
      case "ident": {
        const next = this.tokens[this.i + 1]!;
        if (!t.quoted && next.kind === "op" && next.value === "(") return this.call();
        return this.path();
      }
      case "op":
        if (t.value === "(") {
          this.i++;
          const e = this.expr();
          this.expectOp(")", "')'");
          return e;
        }
        if (t.value === "[") return { type: "literal", value: this.arrayConstant(), pos: t.pos };
        throw this.fail("an expression");
      default:
        throw this.fail("an expression");
    }
  }

  private call(): Expr {
    const t = this.t;
    this.i += 2; // name (
    const args: Expr[] = [];
    if (!this.isOp(")")) {
      args.push(this.expr());
      while (this.isOp(",")) {
        this.i++;
        args.push(this.expr());
      }
    }
    this.expectOp(")", args.length ? "',' or ')'" : "an argument or ')'");
    return this.node({ type: "call", name: t.value.toUpperCase(), args, pos: t.pos }, ...args);
  }

  // attribute_name | <path> '.' attribute_name ; property names after '.' may be keywords
  private path(): PathExpr {
    const t = this.t;
    const segments = [t.value];
    this.i++;
    while (this.isOp(".")) {
      this.i++;
      const s = this.t;
      if (s.kind === "ident") segments.push(s.value);
      else if (s.kind === "keyword") segments.push(s.raw);
      else throw this.fail("a property name after '.'");
      this.i++;
    }
    return { type: "path", segments, pos: t.pos };
  }

  // <array_constant> ::= '[' <constant> [, <constant>]* ']'
  private arrayConstant(): unknown[] {
    return this.nested(() => {
      this.expectOp("[");
      const out: unknown[] = [];
      if (this.isOp("]")) {
        this.i++;
        return out;
      }
      for (;;) {
        out.push(this.constant());
        if (this.isOp("]")) {
          this.i++;
          return out;
        }
        this.expectOp(",", "',' or ']'");
      }
    });
  }

  private constant(): unknown {
    const t = this.t;
    let sign = 1;
    if (this.isOp("-") || this.isOp("+")) {
      sign = t.value === "-" ? -1 : 1;
      this.i++;
      if (this.t.kind !== "number") throw this.fail("a number after the sign");
    }
    const c = this.t;
    if (c.kind === "number") {
      this.i++;
      return sign * c.num;
    }
    if (c.kind === "string") {
      this.i++;
      return c.value;
    }
    if (c.kind === "keyword" && (c.value === "TRUE" || c.value === "FALSE" || c.value === "NULL")) {
      this.i++;
      return c.value === "TRUE" ? true : c.value === "FALSE" ? false : null;
    }
    if (this.isOp("[")) return this.arrayConstant();
    throw this.fail("a constant (string, number, true, false, null or array)");
  }
}
