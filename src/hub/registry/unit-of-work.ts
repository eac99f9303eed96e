import { Part, type RecordChange, type Store } from "../store/store.js";
import type { DeviceRecord, TwinState } from "../twin/device.js";
import type { SectionTexts } from "../twin/twin.js";
import type { Devices } from "./devices.js";

interface Pending {
  parts: number;
  /** The record as the store has it, for a rollback. */
  stored: DeviceRecord;
  /** The JSON text the last staged twin change made, and the twin it made it for. */
  texts: SectionTexts | undefined;
  textsOf: TwinState | undefined;
}

/** lastActivityTime is written at the latest this long after it changed (see UnitOfWork). */
export const ACTIVITY_FLUSH_MS = 30_000;

/**
 * What is written when. Every change is in the store before it is acknowledged, and each write stores only the
 * parts of a device that changed (Part: identity, twin, reported section, session, activity), each in its own row.
 *
 * Service-side changes (`save`, `remove`) are written at once, each in its own transaction, after the device-side
 * changes still waiting (so the store sees changes in the order they were made).
 *
 * Device-side changes (`stage`: reported patches, connection state, session subscriptions, activity) are
 * group-committed: in memory at once, written together in one transaction at the end of the event-loop turn
 * (setImmediate), and whoever answers them waits for that with `afterCommit`. A failed group commit rolls the
 * whole group back in memory, to the records as the store holds them, and every waiter gets the error. Readers
 * never see what is not stored yet: every service-side read commits the group first (see `commit`).
 *
 * lastActivityTime alone is written lazily. "Understand the identity registry in your IoT hub" (Device identity
 * properties) says of `lastActivityTime`: "This property is eventually consistent, but could be delayed up to 5
 * to 10 minutes". So a change of it alone (telemetry; a reported patch besides its twin part) is in memory at
 * once but waits to be written: with the device's session row when that is written anyway, else by a flush at
 * most ACTIVITY_FLUSH_MS later (`flush`, also when the hub stops). A reported patch thus writes one row, and after a
 * `kill -9` a device's lastActivityTime may be up to that much older than it was.
 */
export class UnitOfWork {
  /** Devices changed since the last commit: the parts changed, and the record as the store still has it. */
  private group = new Map<string, Pending>();
  private waiters: Array<(error?: Error) => void> = [];
  private scheduled = false;
  /** Devices whose lastActivityTime in memory is newer than the stored one. */
  private activity = new Set<string>();
  private activityTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly devices: Devices,
    private readonly activityFlushMs = ACTIVITY_FLUSH_MS,
  ) {}

  /**
   * A device-side change of an existing device: in memory now, in the store with the next group commit. `texts`:
   * the JSON its twin change made already (see SectionTexts).
   */
  stage(record: DeviceRecord, parts: number, texts?: SectionTexts): void {
    const id = record.deviceId;
    if (parts & Part.ACTIVITY) {
      this.activityChanged(id);
      parts &= ~Part.ACTIVITY;
    }
    if (parts !== 0) {
      let pending = this.group.get(id);
      if (pending) pending.parts |= parts;
      else {
        pending = { parts, stored: this.devices.require(id), texts: undefined, textsOf: undefined };
        this.group.set(id, pending);
      }
      if (texts) {
        pending.texts = texts;
        pending.textsOf = record.twin;
      }
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.commit();
        });
      }
    }
    this.devices.put(record);
  }

  /**
   * Service-side changes: the waiting group first, then these records (the parts of each that changed;
   * Part.ALL for a new device) in one transaction, then in memory. A store failure throws and changes nothing.
   */
  save(changes: readonly RecordChange[]): void {
    this.commit();
    this.store.write(changes);
    this.written(changes);
    for (const { record } of changes) this.devices.put(record);
  }

  /** Deletes a device from the store (after the waiting group), then from memory. */
  remove(deviceId: string): void {
    this.commit();
    this.store.write([], [deviceId]);
    this.activity.delete(deviceId);
    this.devices.remove(deviceId);
  }

  /**
   * Calls `done` once every change made so far is in the store: at once when none is waiting, else after the
   * group commit, with the error if that failed (the changes are then rolled back in memory too). A waiting
   * lastActivityTime alone is not waited for.
   */
  afterCommit(done: (error?: Error) => void): void {
    if (this.group.size === 0) done();
    else this.waiters.push(done);
  }

  /** Writes the grouped device-side changes in one transaction and answers whoever waits for them. */
  commit(): void {
    if (this.group.size === 0) return;
    const group = this.group;
    const waiters = this.waiters;
    this.group = new Map();
    this.waiters = [];
    let failure: Error | undefined;
    try {
      const changes: RecordChange[] = [];
      for (const [id, { parts, texts, textsOf }] of group) {
        const record = this.devices.require(id);
        // The texts of the last twin change staged, if the twin is still that one.
        changes.push({ record, parts, texts: record.twin === textsOf ? texts : undefined });
      }
      this.store.write(changes);
      this.written(changes);
    } catch (error) {
      failure = error instanceof Error ? error : new Error(String(error));
      // Nothing of the group is stored: memory goes back to what the store holds.
      for (const { stored } of group.values()) this.devices.put(stored);
    }
    for (const done of waiters) done(failure);
  }

  /** Writes everything still waiting: the group, then every lastActivityTime not yet stored. */
  flush(): void {
    this.commit();
    clearTimeout(this.activityTimer);
    this.activityTimer = undefined;
    if (this.activity.size === 0) return;
    const changes: RecordChange[] = [];
    for (const id of this.activity) {
      const record = this.devices.find(id);
      if (record) changes.push({ record, parts: Part.ACTIVITY });
    }
    try {
      this.store.write(changes);
      this.activity.clear();
    } catch {
      // Kept for the next flush: the time is eventually consistent, and nothing waits for it.
      this.scheduleActivityFlush();
    }
  }

  /** The hub stops: everything waiting is written, and no flush is scheduled any more. */
  close(): void {
    this.flush();
    this.closed = true;
    clearTimeout(this.activityTimer);
    this.activityTimer = undefined;
  }

  private activityChanged(deviceId: string): void {
    this.activity.add(deviceId);
    this.scheduleActivityFlush();
  }

  private scheduleActivityFlush(): void {
    if (this.activityTimer || this.closed) return;
    this.activityTimer = setTimeout(() => {
      this.activityTimer = undefined;
      this.flush();
    }, this.activityFlushMs);
    // A waiting flush never keeps the process alive; a clean stop flushes (see `flush`).
    this.activityTimer.unref();
  }

  /** After a successful write: a written session row holds the device's current lastActivityTime too. */
  private written(changes: readonly RecordChange[]): void {
    if (this.activity.size === 0) return;
    for (const { record, parts } of changes) {
      if (parts & (Part.SESSION | Part.ACTIVITY)) this.activity.delete(record.deviceId);
    }
  }
}
