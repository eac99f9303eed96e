import type { DeviceRecord } from "../twin/device.js";

/**
 * Persistence behind a small interface (as Azurite does): the registry keeps the live state in memory
 * and writes every change through here before it answers, so an acknowledged write is durable.
 */
export interface Store {
  loadAll(): DeviceRecord[];
  put(record: DeviceRecord): void;
  putMany(records: readonly DeviceRecord[]): void;
  delete(deviceId: string): void;
  close(): void;
}
