/** Syntax tree as the parser builds it; `pos` is the 0-based offset of the node's first token. */

export type BinaryOp = "+" | "-" | "*" | "/" | "%" | "=" | "!=" | "<" | "<=" | ">" | ">=";

export type Expr =
  | { type: "literal"; value: unknown; pos: number }
  | { type: "path"; segments: string[]; pos: number }
  | { type: "neg"; arg: Expr; pos: number }
  | { type: "not"; arg: Expr; pos: number }
  | { type: "binary"; op: BinaryOp; left: Expr; right: Expr; pos: number }
  /** AND/OR chains are kept flat so long OR lists do not nest deeply. */
  | { type: "logical"; op: "AND" | "OR"; args: Expr[]; pos: number }
  | { type: "in"; negate: boolean; arg: Expr; list: unknown[]; pos: number }
  /** Function or aggregate call; the checker tells which. `name` is upper case. */
  | { type: "call"; name: string; args: Expr[]; pos: number };

export type PathExpr = Extract<Expr, { type: "path" }>;

export interface SelectItem {
  expr: Expr;
  alias?: string;
  pos: number;
}

export interface ParsedQuery {
  text: string;
  top?: number;
  /** undefined for SELECT * */
  items?: SelectItem[];
  starPos: number;
  where?: Expr;
  groupBy?: PathExpr[];
}
