import { QueryError } from "./errors.js";

/**
 * What one query may cost. IoT Hub documents the query text limit ("Query expressions can have a maximum length of
 * 8192 characters", parser.ts) and the page size (at most 100 items, index.ts); it is silent on response size and
 * evaluation cost, so the figures below follow Azure Cosmos DB, whose SQL dialect IoT Hub's query language is:
 * "Each page of query results is capped at 4 MB" and "Every query execution is capped at 5 seconds" (Cosmos DB
 * blog, "Tips & Tricks for Query Pagination"); a page may hold fewer items than asked for when "the query
 * execution's response was too large" or "the query execution's time was too long", even none: "it's also possible
 * that your query may return an empty page of results" ("Pagination in Azure Cosmos DB for NoSQL"). The other limits
 * bound this hub's own work so one query never stalls the event loop.
 */
export const QUERY_LIMITS = {
  /** Bytes of one response page (upper bound of its UTF-8 JSON). Rows that do not fit go to the next page. */
  pageBytes: 4 * 1024 * 1024,
  /** Longest string one function call (CONCAT, UPPER, ...) may produce. */
  maxStringLength: 64 * 1024,
  /** Characters of strings built while evaluating the query over one twin. */
  charsPerTwin: 256 * 1024,
  /** Work done in one go before yielding to the event loop (runQueryPageAsync). */
  sliceMs: 4,
  /** Work on one page of a row query after which the page ends early, with a continuation. */
  rowPageMs: 1000,
  /** Work on one aggregate query (it cannot be resumed) after which it is refused. */
  aggregateMs: 5000,
};

/** The string budget of the twin being evaluated; the runner resets it before each twin. */
let charsLeft = QUERY_LIMITS.charsPerTwin;

export function resetEvalBudget(): void {
  charsLeft = QUERY_LIMITS.charsPerTwin;
}

/** Refuses a string result that would be too long, before it is built. */
export function checkStringLength(length: number, fn: string): void {
  if (length > QUERY_LIMITS.maxStringLength) {
    throw new QueryError(
      `Invalid query: ${fn} would build a string of ${length} characters; local-hub allows at most ${QUERY_LIMITS.maxStringLength}`,
    );
  }
  charsLeft -= length;
  if (charsLeft < 0) {
    throw new QueryError(
      `Invalid query: it builds more than ${QUERY_LIMITS.charsPerTwin} characters of strings per twin; simplify its string functions`,
    );
  }
}

/** Records a string a function built (for results whose length is only known afterwards). */
export function charged(s: string, fn: string): string {
  checkStringLength(s.length, fn);
  return s;
}

export function budgetExceeded(ms: number): QueryError {
  return new QueryError(
    `Invalid query: it needs more than ${ms / 1000} s of work on this hub; narrow it with a WHERE clause or simplify its expressions`,
  );
}

export function rowTooLarge(): QueryError {
  return new QueryError(
    `Invalid query: a result row is larger than the ${QUERY_LIMITS.pageBytes / (1024 * 1024)} MB page limit; select fewer or smaller properties`,
  );
}

/** Where the size walk is in an array: arrays are not pushed whole, so a huge one costs no more than the limit. */
class ArrayCursor {
  index = 0;
  constructor(readonly array: unknown[]) {}
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: JSON escapes control characters
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u2028\u2029]/;

/**
 * An upper bound of the UTF-8 size of `JSON.stringify(value)`, walking no further than `limit`: the result is
 * exact or larger for anything under the limit, and some number above `limit` otherwise. Cost is bounded by the
 * limit, so a huge projected row is measured without being serialized.
 */
export function jsonBytesUpTo(value: unknown, limit: number): number {
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    if (total > limit) return total;
    const v = stack.pop();
    switch (typeof v) {
      case "string":
        // escapes take at most 6 bytes per UTF-16 unit ("\u001f"); plain text at most 3
        total += 2 + (NEEDS_ESCAPE.test(v) ? v.length * 6 : Buffer.byteLength(v, "utf8"));
        break;
      case "number":
        total += Number.isFinite(v) ? String(v).length : 4;
        break;
      case "boolean":
        total += v ? 4 : 5;
        break;
      case "object":
        if (v === null) {
          total += 4;
        } else if (Array.isArray(v)) {
          total += 2; // brackets; elements are walked one at a time through an ArrayCursor
          if (v.length > 0) stack.push(new ArrayCursor(v));
        } else if (v instanceof ArrayCursor) {
          const item = v.array[v.index++];
          total += 1; // comma
          if (v.index < v.array.length) stack.push(v);
          stack.push(item === undefined || typeof item === "function" ? null : item);
        } else {
          total += 2;
          for (const k in v) {
            if (!Object.hasOwn(v, k)) continue;
            const item = (v as Record<string, unknown>)[k];
            if (item === undefined || typeof item === "function") continue;
            total += 2 + (NEEDS_ESCAPE.test(k) ? k.length * 6 : Buffer.byteLength(k, "utf8")) + 2; // "k":,
            stack.push(item);
            if (total > limit) return total;
          }
        }
        break;
      default:
        break;
    }
  }
  return total;
}
