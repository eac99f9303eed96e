/**
 * IoT Hub query language over device twins: lexer -> parser -> checker -> closures.
 * Reference: "IoT Hub query language" and "Queries for IoT Hub device and module twins" (learn.microsoft.com).
 */
import { createHash } from "node:crypto";
import { QUERY_ITEM_TYPES } from "../protocol.js";
import type { TwinSource } from "../twin/types.js";
import { budgetExceeded, jsonBytesUpTo, QUERY_LIMITS, resetEvalBudget, rowTooLarge } from "./budget.js";
import { checkQuery } from "./checker.js";
import { buildPlan, guardPrototype, type Plan } from "./compile.js";
import { QueryError } from "./errors.js";
import { parseQuery } from "./parser.js";

export { QUERY_LIMITS } from "./budget.js";
export { QueryError } from "./errors.js";
export { MAX_QUERY_LENGTH } from "./parser.js";

/**
 * "A query object is instantiated with a max page size of less than or equal to 100 records"
 * (IoT Hub query language > Query results pagination). Larger x-ms-max-item-count values are clamped.
 */
export const MAX_PAGE_SIZE = 100;
/** Page size when the client sends no x-ms-max-item-count (or one that is not a positive number). */
export const DEFAULT_PAGE_SIZE = 100;

/** "twin" for whole twins, "raw" for projections and aggregates (see QUERY_ITEM_TYPES). */
export type ItemType = typeof QUERY_ITEM_TYPES.twin | typeof QUERY_ITEM_TYPES.raw;

export interface CompiledQuery {
  readonly text: string;
  /** x-ms-item-type of the result pages */
  readonly itemType: ItemType;
  /** true for aggregate / GROUP BY queries, whose pages slice one computed result */
  readonly aggregate: boolean;
}

export interface QueryPage {
  items: unknown[];
  /** `items` as the JSON text of the response body (made while measuring the page, so it is made once). */
  json: string;
  itemType: ItemType;
  /** absent on the last page */
  continuation?: string;
}

interface Internal {
  plan: Plan;
  /** binds continuation tokens to the query text */
  hash: string;
}

const internals = new WeakMap<CompiledQuery, Internal>();

/** Parses and checks `text` once; throws QueryError (message: what, where, what was expected). */
export function compileQuery(text: string): CompiledQuery {
  let plan: Plan;
  try {
    plan = buildPlan(checkQuery(parseQuery(text)));
  } catch (e) {
    if (e instanceof QueryError) throw e;
    // Last line of defence: the module promises to throw nothing but QueryError for any text.
    throw new QueryError(`Invalid query: ${e instanceof Error ? e.message : String(e)}`);
  }
  const q: CompiledQuery = Object.freeze({
    text,
    itemType: plan.kind === "twins" ? QUERY_ITEM_TYPES.twin : QUERY_ITEM_TYPES.raw,
    aggregate: plan.kind === "groups",
  });
  internals.set(q, { plan, hash: createHash("sha256").update(text).digest("base64url").slice(0, 16) });
  return q;
}

/**
 * One page of results, computed in one go (for tests and tools; the REST layer uses runQueryPageAsync).
 * Row queries resume after the last twin examined (so every matching twin is returned at most once even when
 * twins change between pages); aggregate queries are recomputed and sliced by offset. A page holds at most
 * `pageSize` items and at most QUERY_LIMITS.pageBytes of JSON. Throws QueryError for a malformed or foreign
 * token, and for a query that exceeds the evaluation limits of budget.ts.
 */
export function runQueryPage(
  q: CompiledQuery,
  source: TwinSource,
  opts: { pageSize?: number; continuation?: string } = {},
): QueryPage {
  const steps = pageSteps(q, source, opts, { workedMs: 0 });
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * The same page, computed in slices of about QUERY_LIMITS.sliceMs with the event loop free in between, so an
 * expensive query never holds up other requests. A row query whose page has taken QUERY_LIMITS.rowPageMs of work
 * ends that page early with a continuation (possibly with no items, as Cosmos DB-backed queries may); an
 * aggregate query that needs more than QUERY_LIMITS.aggregateMs is refused.
 */
export async function runQueryPageAsync(
  q: CompiledQuery,
  source: TwinSource,
  opts: { pageSize?: number; continuation?: string } = {},
): Promise<QueryPage> {
  const ctl = { workedMs: 0 };
  const steps = pageSteps(q, source, opts, ctl);
  for (;;) {
    const started = performance.now();
    let r: IteratorResult<void, QueryPage>;
    do r = steps.next();
    while (!r.done && performance.now() - started < QUERY_LIMITS.sliceMs);
    ctl.workedMs += performance.now() - started;
    if (r.done) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * Twins examined between chances to pause (a power of two, minus one). One twin costs at most about 0.1 ms with
 * the string budget of budget.ts, so 16 keep a slice within a few milliseconds; pausing after every twin would
 * cost about a third of a simple query's time.
 */
const PAUSE_EVERY_MASK = 15;

/** The page computation; it yields every few twins so a driver can pause it. */
function* pageSteps(
  q: CompiledQuery,
  source: TwinSource,
  opts: { pageSize?: number; continuation?: string },
  ctl: { workedMs: number },
): Generator<void, QueryPage, void> {
  const internal = internals.get(q);
  if (!internal) throw new QueryError("Invalid query: not a query made by compileQuery");
  const { plan, hash } = internal;
  guardPrototype();
  const pageSize = pageSizeOf(opts.pageSize);
  const token = opts.continuation ? decodeToken(opts.continuation, hash) : undefined;
  const maxBytes = QUERY_LIMITS.pageBytes;
  let examined = 0;

  if (plan.kind === "groups") {
    if (token && token.o === undefined) throw badToken("it does not belong to an aggregate query");
    let rows: unknown[];
    if (plan.countRow) {
      // COUNT() of every twin needs no scan: the source knows its size.
      rows = [plan.countRow(source.size)];
    } else {
      const run = plan.startGroups();
      for (const twin of source.scan()) {
        if (ctl.workedMs > QUERY_LIMITS.aggregateMs) throw budgetExceeded(QUERY_LIMITS.aggregateMs);
        resetEvalBudget();
        run.add(twin);
        if ((++examined & PAUSE_EVERY_MASK) === 0) yield;
      }
      rows = run.rows(resetEvalBudget);
    }
    if (plan.top !== undefined) rows = rows.slice(0, plan.top);
    const offset = token?.o ?? 0;
    const items: unknown[] = [];
    const texts: string[] = [];
    let bytes = 2;
    for (let i = offset; i < rows.length && items.length < pageSize; i++) {
      const [text, size] = rowJson(rows[i], false, maxBytes);
      if (bytes + size + 1 > maxBytes) break;
      items.push(rows[i]);
      texts.push(text);
      bytes += size + 1;
    }
    const next = offset + items.length;
    const json = `[${texts.join(",")}]`;
    return next < rows.length
      ? { items, json, itemType: QUERY_ITEM_TYPES.raw, continuation: encodeToken({ v: 1, h: hash, o: next }) }
      : { items, json, itemType: QUERY_ITEM_TYPES.raw };
  }

  if (token && token.k === undefined) throw badToken("it does not belong to a row query");
  const itemType: ItemType = plan.kind === "twins" ? QUERY_ITEM_TYPES.twin : QUERY_ITEM_TYPES.raw;
  const returned = token?.n ?? 0;
  const remaining = plan.top === undefined ? Number.POSITIVE_INFINITY : plan.top - returned;
  const limit = Math.min(pageSize, remaining);
  const items: unknown[] = [];
  const texts: string[] = [];
  if (limit <= 0) return { items, json: "[]", itemType };
  /** The last twin this page has dealt with: the next page starts after it. */
  let lastId: string | undefined;
  let bytes = 2;
  let more = false;
  for (const twin of source.scan(token?.k)) {
    if (lastId !== undefined && ctl.workedMs > QUERY_LIMITS.rowPageMs) {
      more = true; // out of time for this page: the client continues where it ended
      break;
    }
    resetEvalBudget();
    if (plan.accept(twin)) {
      if (items.length === limit) {
        more = true; // one more match exists: the client gets a continuation token
        break;
      }
      const row = plan.project(twin);
      const [text, size] = rowJson(row, plan.kind === "twins", maxBytes);
      if (bytes + size + 1 > maxBytes) {
        more = true; // the page is full: this twin starts the next one
        break;
      }
      items.push(row);
      texts.push(text);
      bytes += size + 1;
      if (items.length === remaining) {
        lastId = twin.deviceId;
        break; // TOP reached: no need to look further
      }
    }
    lastId = twin.deviceId;
    if ((++examined & PAUSE_EVERY_MASK) === 0) yield;
  }
  const json = `[${texts.join(",")}]`;
  if (!more || lastId === undefined) return { items, json, itemType };
  return {
    items,
    json,
    itemType,
    continuation: encodeToken({ v: 1, h: hash, k: lastId, n: returned + items.length }),
  };
}

/**
 * The JSON of one result row, refused when it alone would not fit in a page. A whole twin is bounded by the twin
 * size limits, so it is serialized at once; a projection can repeat large values any number of times, so its size
 * is measured (at a cost bounded by the limit) before it is serialized.
 */
function rowJson(row: unknown, isTwin: boolean, maxBytes: number): [text: string, bytes: number] {
  if (!isTwin && jsonBytesUpTo(row, maxBytes) + 2 > maxBytes) throw rowTooLarge();
  const text = JSON.stringify(row) ?? "null";
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes + 2 > maxBytes) throw rowTooLarge();
  return [text, bytes];
}

function pageSizeOf(n: number | undefined): number {
  if (n === undefined || !Number.isFinite(n) || n < 1) return DEFAULT_PAGE_SIZE;
  return Math.min(Math.floor(n), MAX_PAGE_SIZE);
}

/** Continuation token content: version, query hash, then either the last deviceId and count (rows) or an offset. */
interface Token {
  v: 1;
  h: string;
  k?: string;
  n?: number;
  o?: number;
}

const MAX_TOKEN_LENGTH = 4096;

function encodeToken(t: Token): string {
  return Buffer.from(JSON.stringify(t), "utf8").toString("base64url");
}

function badToken(why: string): QueryError {
  return new QueryError(
    `Invalid continuation token: ${why}; pass the x-ms-continuation value of the previous page of the same query`,
    undefined,
    "continuation",
  );
}

function decodeToken(text: string, hash: string): Token {
  if (typeof text !== "string" || text.length > MAX_TOKEN_LENGTH || !/^[A-Za-z0-9_-]+$/.test(text)) {
    throw badToken("it is not a token this hub issued");
  }
  let t: unknown;
  try {
    t = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
  } catch {
    throw badToken("it is not a token this hub issued");
  }
  if (typeof t !== "object" || t === null || (t as Token).v !== 1 || typeof (t as Token).h !== "string") {
    throw badToken("it is not a token this hub issued");
  }
  const tok = t as Token;
  if (tok.h !== hash) throw badToken("it was issued for a different query");
  const count = (x: unknown) => x === undefined || (Number.isSafeInteger(x) && (x as number) >= 0);
  const rowShape = typeof tok.k === "string" && count(tok.n) && tok.n !== undefined && tok.o === undefined;
  const offsetShape = tok.k === undefined && tok.n === undefined && count(tok.o) && tok.o !== undefined;
  if (!rowShape && !offsetShape) throw badToken("its content is malformed");
  return tok;
}
