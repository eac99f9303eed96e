import { errors } from "../errors.js";
import type { DeviceRecord } from "../twin/device.js";

/**
 * The devices in memory: deviceId → DeviceRecord, the one live copy every reader uses (twin and identity
 * rendering, the authorizer, queries). Records are never changed in place: a change puts a new record, and every
 * replacement or removal goes through `put` and `remove`, which tell `changed` first (the registry's
 * `recordChanged` event). Also keeps the ids in ascending order for scans, rebuilt when a device comes or goes.
 */
export class Devices {
  private readonly map = new Map<string, DeviceRecord>();
  private sortedIds: string[] | null = null;

  constructor(
    records: Iterable<DeviceRecord>,
    private readonly changed: (deviceId: string, before: DeviceRecord | undefined) => void,
  ) {
    for (const record of records) this.map.set(record.deviceId, record);
  }

  get size(): number {
    return this.map.size;
  }

  find(deviceId: string): DeviceRecord | undefined {
    return this.map.get(deviceId);
  }

  require(deviceId: string): DeviceRecord {
    const record = this.map.get(deviceId);
    if (!record) throw errors.deviceNotFound(deviceId);
    return record;
  }

  has(deviceId: string): boolean {
    return this.map.has(deviceId);
  }

  values(): IterableIterator<DeviceRecord> {
    return this.map.values();
  }

  /** Replaces (or adds) the device's record. */
  put(record: DeviceRecord): void {
    const id = record.deviceId;
    const before = this.map.get(id);
    this.changed(id, before);
    this.map.set(id, record);
    if (!before) this.sortedIds = null;
  }

  remove(deviceId: string): void {
    const before = this.map.get(deviceId);
    if (!before) return;
    this.changed(deviceId, before);
    this.map.delete(deviceId);
    this.sortedIds = null;
  }

  /** Every deviceId in ascending order. */
  ids(): string[] {
    if (!this.sortedIds) this.sortedIds = [...this.map.keys()].sort(compareIds);
    return this.sortedIds;
  }

  /** The records in ascending deviceId order, strictly after `afterId`. */
  *scanRecords(afterId?: string): Iterable<DeviceRecord> {
    const { list, start } = this.idsAfter(afterId);
    for (let i = start; i < list.length; i++) {
      // The id list can be stale if a device was deleted while a page was being walked.
      const record = this.map.get(list[i]);
      if (record) yield record;
    }
  }

  /** The sorted ids and the index of the first one greater than `afterId`. */
  idsAfter(afterId: string | undefined): { list: string[]; start: number } {
    const ids = this.ids();
    let lo = 0;
    if (afterId !== undefined) {
      // Binary search for the first id greater than afterId.
      let hi = ids.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compareIds(ids[mid], afterId) <= 0) lo = mid + 1;
        else hi = mid;
      }
    }
    return { list: ids, start: lo };
  }
}

export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
