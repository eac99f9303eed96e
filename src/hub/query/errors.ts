/**
 * The only error the query module throws. The REST layer answers it with 400
 * (`kind` tells it whether the query text or the continuation token was at fault).
 */
export class QueryError extends Error {
  override readonly name = "QueryError";
  constructor(
    message: string,
    /** 1-based character offset of the fault in the query text, when there is one. */
    readonly position?: number,
    readonly kind: "query" | "continuation" = "query",
  ) {
    super(message);
  }
}

/** 1-based line and column of a 0-based offset, for messages about multi-line queries. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return { line, column: offset - start + 1 };
}

/** "Invalid query at line 1, column 23: <detail>" with `position` set (1-based). */
export function errorAt(text: string, offset: number, detail: string): QueryError {
  const { line, column } = lineColumn(text, offset);
  return new QueryError(`Invalid query at line ${line}, column ${column}: ${detail}`, offset + 1);
}
