import { EventEmitter } from "node:events";
import type { Store } from "../store/store.js";
import type { DeviceRecord } from "../twin/device.js";
import type { TwinDocument, TwinSource } from "../twin/types.js";
import { Timestamps } from "./clock.js";
import { Devices } from "./devices.js";
import { Identities } from "./identities.js";
import { Sessions } from "./sessions.js";
import { Twins } from "./twins.js";
import { UnitOfWork } from "./unit-of-work.js";

/** The registry's events: name → the listener's arguments. */
export interface RegistryEvents {
  /** A desired-property change to push to the device: the patch as applied plus its new `$version`. */
  desiredChanged: [deviceId: string, patch: Record<string, unknown>, version: number];
  /** The device was disabled, re-keyed or deleted: drop its connection. */
  deviceRevoked: [deviceId: string];
  /** A device record is about to be replaced or removed; `before` is undefined for a new device. */
  recordChanged: [deviceId: string, before: DeviceRecord | undefined];
}

/** What the registry's parts use to tell the rest of the hub. */
export type RegistryEmitter = Pick<EventEmitter<RegistryEvents>, "emit">;

/**
 * The identity registry and twins: live state in memory, every change written to the store before it is
 * acknowledged. It is the only place that changes devices, so REST and MQTT see the same rules. One concern per
 * part:
 *
 * - `identities` (identities.ts): create, update, delete, list, statistics;
 * - `twins` (twins.ts): twin reads, the service's twin updates, the device's reported patches;
 * - `sessions` (sessions.ts): connection state, activity, the MQTT session's subscriptions;
 * - `work` (unit-of-work.ts): what is written when (the group commit of device-side changes);
 * - the devices in memory (devices.ts).
 *
 * It tells the rest of the hub through events (RegistryEvents) rather than holding callbacks.
 */
export class DeviceRegistry extends EventEmitter<RegistryEvents> implements TwinSource {
  private readonly devices: Devices;
  readonly work: UnitOfWork;
  readonly twins: Twins;
  readonly identities: Identities;
  readonly sessions: Sessions;
  /** Messages pending in a device's cloud-to-device queue (the twin's `cloudToDeviceMessageCount`); set by the hub. */
  cloudToDeviceCount: (deviceId: string) => number = () => 0;

  constructor(store: Store, clock?: () => Date) {
    super();
    const records = store.loadAll();
    // Nobody is connected to a hub that just started.
    for (const record of records) record.connectionState = "Disconnected";
    this.devices = new Devices(records, (id, before) => this.emit("recordChanged", id, before));
    const time = new Timestamps(clock);
    this.work = new UnitOfWork(store, this.devices);
    this.twins = new Twins(this.devices, this.work, time, this, (id) => this.cloudToDeviceCount(id));
    this.identities = new Identities(this.devices, this.work, time, this.twins, this);
    this.sessions = new Sessions(this.devices, this.work, time);
  }

  get size(): number {
    return this.devices.size;
  }

  find(deviceId: string): DeviceRecord | undefined {
    return this.devices.find(deviceId);
  }

  require(deviceId: string): DeviceRecord {
    return this.devices.require(deviceId);
  }

  /** See UnitOfWork.afterCommit: `done` runs once every change made so far is stored (or failed to be). */
  afterCommit(done: (error?: Error) => void): void {
    this.work.afterCommit(done);
  }

  /** Writes the waiting device-side changes now (see UnitOfWork.commit). */
  commit(): void {
    this.work.commit();
  }

  /** Writes everything still waiting now, lazily written lastActivityTimes included (see UnitOfWork). */
  flush(): void {
    this.work.flush();
  }

  /** Before the store closes: writes everything still waiting (see UnitOfWork.close). */
  close(): void {
    this.work.close();
  }

  /** TwinSource for the query engine: ascending deviceId, strictly after `afterId`. */
  scan(afterId?: string): Iterable<TwinDocument> {
    return this.twins.scan(afterId);
  }

  /** The device records in ascending deviceId order, strictly after `afterId` (scan without rendering). */
  *scanRecords(afterId?: string): Iterable<DeviceRecord> {
    this.work.commit();
    yield* this.devices.scanRecords(afterId);
  }
}
