import { AMQP } from "../protocol.js";

/** Where a receiver starts, from its selector filter. */
export type StartPosition =
  | { kind: "offset"; offset: number; inclusive: boolean }
  | { kind: "latest" }
  | { kind: "sequence"; sequence: number; inclusive: boolean }
  | { kind: "enqueued"; ms: number; inclusive: boolean };

/**
 * The Event Hubs receiver's selector filter ("AMQP 1.0 in Azure Service Bus and Event Hubs protocol guide",
 * "Event Hubs: filters"; what @azure/event-hubs and the other SDKs send): one comparison of
 * `amqp.annotation.x-opt-offset`, `x-opt-sequence-number` or `x-opt-enqueued-time` (ms since the epoch)
 * with `>` or `>=`, the value optionally in single quotes. Offset `-1` is the start of the partition and
 * `@latest` its end. No filter starts at the start. Anything else is refused (undefined).
 */
export function parseSelector(text: string | undefined): StartPosition | undefined {
  if (text === undefined) return { kind: "offset", offset: -1, inclusive: false };
  const m =
    /^\s*amqp\.annotation\.(x-opt-offset|x-opt-sequence-number|x-opt-enqueued-time)\s*(>=?)\s*(?:'([^']*)'|(-?\d+))\s*$/i.exec(
      text,
    );
  if (!m) return undefined;
  const field = m[1].toLowerCase();
  const inclusive = m[2] === ">=";
  const value = m[3] ?? m[4];
  if (field === AMQP.annotations.offset) {
    if (value === "@latest") return { kind: "latest" };
    if (!/^-?\d{1,15}$/.test(value)) return undefined;
    return { kind: "offset", offset: Number(value), inclusive };
  }
  if (!/^-?\d{1,15}$/.test(value)) return undefined;
  if (field === AMQP.annotations.sequenceNumber)
    return { kind: "sequence", sequence: Number(value), inclusive };
  return { kind: "enqueued", ms: Number(value), inclusive };
}

/** The selector text from a source's filter set, however rhea decoded the described value. */
export function selectorText(filter: unknown): string | undefined | null {
  if (!filter || typeof filter !== "object") return undefined;
  const entry = (filter as Record<string, unknown>)[AMQP.selectorFilter];
  if (entry === undefined) return Object.keys(filter).length === 0 ? undefined : null;
  let value: unknown = entry;
  while (value && typeof value === "object" && "value" in (value as object))
    value = (value as { value: unknown }).value;
  if (typeof value === "string") return value;
  return null;
}
