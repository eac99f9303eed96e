import {
  type CompiledQuery,
  compileQuery,
  type QueryPage,
  runQueryPage,
} from "../../../src/hub/query/index.js";
import type { TwinSource } from "../../../src/hub/twin/types.js";

/** Walks every page of a query, as the SDK does while a continuation token comes back. */
export function runAll(
  query: string | CompiledQuery,
  source: TwinSource,
  pageSize?: number,
  between?: (page: QueryPage, index: number) => void,
): { items: unknown[]; pages: QueryPage[] } {
  const q = typeof query === "string" ? compileQuery(query) : query;
  const pages: QueryPage[] = [];
  let continuation: string | undefined;
  do {
    const page = runQueryPage(q, source, { pageSize, continuation });
    pages.push(page);
    continuation = page.continuation;
    between?.(page, pages.length - 1);
    if (pages.length > 100_000) throw new Error("paging does not end");
  } while (continuation);
  return { items: pages.flatMap((p) => p.items), pages };
}

export const idsOf = (items: unknown[]) => items.map((t) => (t as { deviceId: string }).deviceId);
