import type { Store } from "../store/store.js";
import type { DeviceRecord } from "../twin/device.js";
import type { Devices } from "./devices.js";

export { Part } from "../store/store.js";

/**
 * What is written when. Every change is in the store before it is acknowledged.
 *
 * Service-side changes (`save`, `remove`) are written at once, each in its own transaction, after the device-side
 * changes still waiting (so the store sees changes in the order they were made).
 *
 * Device-side changes (`stage`: reported patches, connection state, session subscriptions, activity) are
 * group-committed: in memory at once, written together in one transaction at the end of the event-loop turn
 * (setImmediate), and whoever answers them waits for that with `afterCommit`. A failed group commit rolls the
 * whole group back in memory, to the records as the store holds them, and every waiter gets the error. Readers
 * never see what is not stored yet: every service-side read commits the group first (see `commit`).
 */
export class UnitOfWork {
  /** Devices changed since the last commit: the parts changed, and the record as the store still has it. */
  private group = new Map<string, { parts: number; stored: DeviceRecord }>();
  private waiters: Array<(error?: Error) => void> = [];
  private scheduled = false;

  constructor(
    private readonly store: Store,
    private readonly devices: Devices,
  ) {}

  /** A device-side change of an existing device: in memory now, in the store with the next group commit. */
  stage(record: DeviceRecord, parts: number): void {
    const id = record.deviceId;
    const pending = this.group.get(id);
    if (pending) pending.parts |= parts;
    else this.group.set(id, { parts, stored: this.devices.require(id) });
    this.devices.put(record);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.commit();
      });
    }
  }

  /**
   * Service-side changes: the waiting group first, then these records (`parts` of each; Part.ALL for a new
   * device) in one transaction, then in memory. A store failure throws and changes nothing.
   */
  save(changes: ReadonlyArray<{ record: DeviceRecord; parts: number }>): void {
    this.commit();
    this.store.putMany(changes.map((c) => c.record));
    for (const { record } of changes) this.devices.put(record);
  }

  /** Deletes a device from the store (after the waiting group), then from memory. */
  remove(deviceId: string): void {
    this.commit();
    this.store.delete(deviceId);
    this.devices.remove(deviceId);
  }

  /**
   * Calls `done` once every change made so far is in the store: at once when none is waiting, else after the
   * group commit, with the error if that failed (the changes are then rolled back in memory too).
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
      this.store.putMany([...group.keys()].map((id) => this.devices.require(id)));
    } catch (error) {
      failure = error instanceof Error ? error : new Error(String(error));
      // Nothing of the group is stored: memory goes back to what the store holds.
      for (const { stored } of group.values()) this.devices.put(stored);
    }
    for (const done of waiters) done(failure);
  }
}
