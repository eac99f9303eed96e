/**
 * The hub's log lines carry text that clients chose (client IDs, topics, URLs, error messages). Two rules keep
 * a client from writing the log for us:
 * - `escapeForLog`: control characters (C0, DEL, C1, and the Unicode line and paragraph separators) are shown
 *   as `\xNN` / `\uNNNN`, so a client ID with a newline or a terminal escape cannot start a forged line or
 *   repaint the operator's terminal. Applied once, where the hub's `log` is made (index.ts), so every path is
 *   covered.
 * - `perKeyLimit`: lines about one device are rate-limited, so one device cannot write hundreds of thousands of
 *   lines (a refused publish closes the connection, but a device may reconnect and do it again).
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

export function escapeForLog(text: string): string {
  return text.replace(CONTROL, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16)}`;
  });
}

export interface LogLimit {
  /** Lines allowed per key in one window. */
  lines: number;
  windowMs: number;
  /** Keys remembered at most; the least recently used are forgotten beyond that. */
  maxKeys: number;
}

/** What one device may log: 20 lines per 10 s, then one summary line when its next window opens. */
export const DEVICE_LOG_LIMIT: LogLimit = { lines: 20, windowMs: 10_000, maxKeys: 10_000 };

/** A log line, or a function that makes it: made only if the line is written (hot paths log this way). */
export type LogLine = string | (() => string);

/**
 * Wraps `log` so that each key (a device ID) gets at most `limit.lines` lines per window; the lines over it are
 * counted and reported in one line ("N lines about <key> suppressed") when the key logs again after its window.
 * Keys are forgotten in the order their current window began once more than `limit.maxKeys` are remembered.
 */
export function perKeyLimit(
  log: (line: string) => void,
  limit: LogLimit = DEVICE_LOG_LIMIT,
  now: () => number = Date.now,
): (key: string, line: LogLine) => void {
  const windows = new Map<string, { start: number; count: number; suppressed: number }>();
  return (key, line) => {
    const t = now();
    let w = windows.get(key);
    if (w && t - w.start >= limit.windowMs) {
      if (w.suppressed > 0) log(`${w.suppressed} more log lines about ${key} were suppressed`);
      windows.delete(key);
      w = undefined;
    }
    if (!w) {
      w = { start: t, count: 0, suppressed: 0 };
      if (windows.size >= limit.maxKeys) windows.delete(windows.keys().next().value as string);
      // Inserted when its window begins: the Map keeps keys in that order for the eviction above.
      windows.set(key, w);
    }
    if (w.count < limit.lines) {
      w.count++;
      log(typeof line === "string" ? line : line());
    } else {
      w.suppressed++;
    }
  };
}
