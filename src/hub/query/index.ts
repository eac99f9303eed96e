/**
 * IoT Hub query language over device twins: lexer -> parser -> checker -> closures.
 * Reference: "IoT Hub query language" and "Queries for IoT Hub device and module twins" (learn.microsoft.com).
 */
import { createHash } from "node:crypto";
import { QUERY_ITEM_TYPES } from "../protocol.js";
import type { TwinSource } from "../twin/types.js";
import { checkQuery } from "./checker.js";
import { buildPlan, guardPrototype, type Plan } from "./compile.js";
import { QueryError } from "./errors.js";
import { parseQuery } from "./parser.js";

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
 * One page of results. Row queries resume after the last returned deviceId (so every matching twin is
 * returned at most once even when twins change between pages); aggregate queries are recomputed and
 * sliced by offset. Throws QueryError (kind "continuation") for a malformed or foreign token.
 */
export function runQueryPage(
  q: CompiledQuery,
  source: TwinSource,
  opts: { pageSize?: number; continuation?: string } = {},
): QueryPage {
  const internal = internals.get(q);
  if (!internal) throw new QueryError("Invalid query: not a query made by compileQuery");
  const { plan, hash } = internal;
  guardPrototype();
  const pageSize = pageSizeOf(opts.pageSize);
  const token = opts.continuation ? decodeToken(opts.continuation, hash) : undefined;

  if (plan.kind === "groups") {
    if (token && token.o === undefined) throw badToken("it does not belong to an aggregate query");
    // COUNT() of every twin needs no scan: the source knows its size.
    let rows = plan.countRow ? [plan.countRow(source.size)] : plan.aggregate(source.scan());
    if (plan.top !== undefined) rows = rows.slice(0, plan.top);
    const offset = token?.o ?? 0;
    const items = rows.slice(offset, offset + pageSize);
    const next = offset + items.length;
    return next < rows.length
      ? { items, itemType: QUERY_ITEM_TYPES.raw, continuation: encodeToken({ v: 1, h: hash, o: next }) }
      : { items, itemType: QUERY_ITEM_TYPES.raw };
  }

  if (token && token.k === undefined) throw badToken("it does not belong to a row query");
  const itemType: ItemType = plan.kind === "twins" ? QUERY_ITEM_TYPES.twin : QUERY_ITEM_TYPES.raw;
  const returned = token?.n ?? 0;
  const remaining = plan.top === undefined ? Number.POSITIVE_INFINITY : plan.top - returned;
  const limit = Math.min(pageSize, remaining);
  const items: unknown[] = [];
  if (limit <= 0) return { items, itemType };
  let lastId = "";
  let more = false;
  for (const twin of source.scan(token?.k)) {
    if (!plan.accept(twin)) continue;
    if (items.length === limit) {
      more = true; // one more match exists: the client gets a continuation token
      break;
    }
    items.push(plan.project(twin));
    lastId = twin.deviceId;
    if (items.length === remaining) break; // TOP reached: no need to look further
  }
  if (!more) return { items, itemType };
  return {
    items,
    itemType,
    continuation: encodeToken({ v: 1, h: hash, k: lastId, n: returned + items.length }),
  };
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
