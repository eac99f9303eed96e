import type { DeviceRecord } from "../twin/device.js";
import type { SectionTexts } from "../twin/twin.js";

/**
 * The parts of a device record, as bit flags: what a change touched, and so what a write stores. Each part has
 * its own row, so a change writes only what it changed (see SqliteStore).
 */
export const Part = {
  /** The identity: keys, status, authentication, scopes, etag, generation (the `identities` row). */
  IDENTITY: 1,
  /** The whole twin: tags, desired and reported sections, twin version (the `twins` row). */
  TWIN: 2,
  /** The reported section and the twin version only: a device's reported patch (part of the `twins` row). */
  REPORTED: 4,
  /** Connection state and the MQTT session's subscriptions (the `sessions` row, lastActivityTime included). */
  SESSION: 8,
  /** lastActivityTime alone (in the `sessions` row); the registry writes it lazily, see UnitOfWork. */
  ACTIVITY: 16,
  /** Every part: a new device. */
  ALL: 31,
} as const;

/** One device's change to write: the record as it is now, and which of its parts changed (Part flags). */
export interface RecordChange {
  record: DeviceRecord;
  parts: number;
  /** The JSON text of the record's tags or sections' properties, when the change made it already (applyChange). */
  texts?: SectionTexts;
}

/**
 * Persistence behind a small interface (as Azurite does): the registry keeps the live state in memory
 * and writes every change through here before it answers, so an acknowledged write is durable.
 */
export interface Store {
  /** Every device, put together from its rows. */
  loadAll(): DeviceRecord[];
  /**
   * In one transaction, all or nothing: removes the `deleted` devices, then writes the changed parts of each
   * record (a new device: Part.ALL). Throws when the transaction failed.
   */
  write(changes: readonly RecordChange[], deleted?: readonly string[]): void;
  delete(deviceId: string): void;
  close(): void;
}
