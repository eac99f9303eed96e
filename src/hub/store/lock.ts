import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * One hub per data folder. The exclusion itself is SQLite's: the store opens `hub.db` in EXCLUSIVE locking mode
 * and takes the lock at once (see SqliteStore), so the operating system holds it for as long as the hub's process
 * lives and drops it when the process dies, `kill -9` included. This module only adds what the refusal message
 * needs: `hub.pid`, a note of the running hub's PID and port, which is informational and never trusted as a lock.
 */

const HOLDER_FILE = "hub.pid";

export interface LockHolder {
  pid: number;
  port: number;
}

/** Thrown when another process holds the data folder's database. */
export class DataDirInUseError extends Error {
  readonly code = "EDATADIRINUSE";
  constructor(
    readonly dataDir: string,
    readonly holder: LockHolder | undefined,
  ) {
    super(
      `the data folder ${dataDir} is in use by another local-hub` +
        (holder ? ` (PID ${holder.pid}, port ${holder.port})` : "") +
        ": use that hub, or stop it first; to run a second hub at the same time, give it its own --data-dir " +
        "(or --in-memory)",
    );
    this.name = "DataDirInUseError";
  }
}

/** True for SQLite's "the database is locked" (SQLITE_BUSY, SQLITE_LOCKED and their extended codes). */
export function isLockedError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && /^SQLITE_(BUSY|LOCKED)/.test(code);
}

/** The note left by the hub holding `dataDir`, when there is a readable one. */
export function readHolder(dataDir: string): LockHolder | undefined {
  try {
    const parsed = JSON.parse(readFileSync(join(dataDir, HOLDER_FILE), "utf8")) as Partial<LockHolder>;
    if (Number.isSafeInteger(parsed.pid) && Number.isSafeInteger(parsed.port))
      return { pid: parsed.pid!, port: parsed.port! };
  } catch {
    // No note (yet), or a damaged one: the message then names no PID.
  }
  return undefined;
}

/** Written by the hub that holds the lock, once it listens (replaced whole, never seen half-written). */
export function writeHolder(dataDir: string, holder: LockHolder): void {
  const file = join(dataDir, HOLDER_FILE);
  const partial = `${file}.${process.pid}.tmp`;
  writeFileSync(partial, `${JSON.stringify(holder)}\n`, { mode: 0o600 });
  renameSync(partial, file);
}

/** Removed on a clean stop; a note left by a killed hub is harmless (the lock, not the note, decides). */
export function removeHolder(dataDir: string): void {
  rmSync(join(dataDir, HOLDER_FILE), { force: true });
}
