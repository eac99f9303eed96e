import { randomBytes } from "node:crypto";
import { errors } from "./errors.js";
import { checkDeviceId, type IdentityInput, identityFields, scopeOwner } from "./identity.js";
import type { Store } from "./store/store.js";
import { twinChangeOf } from "./twin/body.js";
import { type DeviceRecord, NEVER } from "./twin/device.js";
import { applyChange, diffPatch, emptyTwin, renderTwin, type TwinChange, twinEtag } from "./twin/twin.js";
import type { TwinDocument, TwinSource } from "./twin/types.js";

export type { IdentityInput } from "./identity.js";

/**
 * An If-Match condition as the REST layer parsed it from the header: `"*"` matches any etag, anything else must be
 * the current etag (without quotes).
 */
export type EtagCondition = string;

export interface RegistryHooks {
  /** A desired-property change to push to the device: the patch as applied plus its new `$version`. */
  desiredChanged?(deviceId: string, patch: Record<string, unknown>, version: number): void;
  /** The device was disabled or deleted: drop its connection. */
  deviceRevoked?(deviceId: string): void;
  /** A device record is about to be replaced or removed; `before` is undefined for a new device. */
  recordChanged?(deviceId: string, before: DeviceRecord | undefined): void;
}

/**
 * The identity registry and twins: live state in memory, every change written to the store before it is
 * acknowledged. It is the only place that changes devices, so REST and MQTT see the same rules.
 *
 * Service-side changes are written at once. Device-side changes (reported patches, connection state, activity)
 * are group-committed: written together in one transaction at the end of the event-loop turn, and whoever
 * answers them waits for that with `afterCommit`. Readers never see what is not stored yet: every write and
 * every service-side read commits the group first (see `commit`).
 */
export class DeviceRegistry implements TwinSource {
  private readonly devices = new Map<string, DeviceRecord>();
  private sortedIds: string[] | null = null;
  private etagCounter = 0;
  /** Devices changed since the last commit, with their record as the store still has it (for a rollback). */
  private uncommitted = new Map<string, DeviceRecord>();
  private commitWaiters: Array<(error?: Error) => void> = [];
  private commitScheduled = false;
  /** Messages pending in a device's cloud-to-device queue (the twin's `cloudToDeviceMessageCount`); set by the hub. */
  cloudToDeviceCount: (deviceId: string) => number = () => 0;

  constructor(
    private readonly store: Store,
    private readonly hooks: RegistryHooks = {},
    private readonly clock: () => Date = () => new Date(),
  ) {
    for (const record of store.loadAll()) {
      // Nobody is connected to a hub that just started.
      record.connectionState = "Disconnected";
      this.devices.set(record.deviceId, record);
    }
  }

  get size(): number {
    return this.devices.size;
  }

  /** The last timestamp made, reused within the same millisecond (a reported patch stamps every key it sets). */
  private lastNow = { at: Number.NaN, iso: "" };

  private now(): string {
    const date = this.clock();
    const at = date.getTime();
    if (at !== this.lastNow.at) this.lastNow = { at, iso: date.toISOString() };
    return this.lastNow.iso;
  }

  find(deviceId: string): DeviceRecord | undefined {
    return this.devices.get(deviceId);
  }

  require(deviceId: string): DeviceRecord {
    const record = this.devices.get(deviceId);
    if (!record) throw errors.deviceNotFound(deviceId);
    return record;
  }

  private newEtag(): string {
    this.etagCounter = (this.etagCounter + 1) % 1e9;
    return Buffer.from(`${Date.now().toString(36)}${this.etagCounter}`).toString("base64");
  }

  private save(record: DeviceRecord): void {
    this.commit();
    this.store.put(record);
    this.hooks.recordChanged?.(record.deviceId, this.devices.get(record.deviceId));
    this.devices.set(record.deviceId, record);
  }

  /** A device-side change of an existing device: in memory now, in the store with the next group commit. */
  private saveGrouped(record: DeviceRecord): void {
    const id = record.deviceId;
    if (!this.uncommitted.has(id)) this.uncommitted.set(id, this.devices.get(id)!);
    this.hooks.recordChanged?.(id, this.devices.get(id));
    this.devices.set(id, record);
    if (!this.commitScheduled) {
      this.commitScheduled = true;
      setImmediate(() => {
        this.commitScheduled = false;
        this.commit();
      });
    }
  }

  /**
   * Calls `done` once every change made so far is in the store: at once when none is waiting, else after the
   * group commit, with the error if that failed (the changes are then rolled back in memory too).
   */
  afterCommit(done: (error?: Error) => void): void {
    if (this.uncommitted.size === 0) done();
    else this.commitWaiters.push(done);
  }

  /** Writes the grouped device-side changes in one transaction and answers whoever waits for them. */
  commit(): void {
    if (this.uncommitted.size === 0) return;
    const group = this.uncommitted;
    const waiters = this.commitWaiters;
    this.uncommitted = new Map();
    this.commitWaiters = [];
    let failure: Error | undefined;
    try {
      this.store.putMany([...group.keys()].map((id) => this.devices.get(id)!));
    } catch (error) {
      failure = error instanceof Error ? error : new Error(String(error));
      // Nothing of the group is stored: memory goes back to what the store holds.
      for (const [id, stored] of group) {
        this.hooks.recordChanged?.(id, this.devices.get(id));
        this.devices.set(id, stored);
      }
    }
    for (const done of waiters) done(failure);
  }

  /** The edge device whose own deviceScope is `scope`, if any (the scope names its device; see scopeOwner). */
  edgeByScope(scope: string): DeviceRecord | undefined {
    const owner = scopeOwner(scope);
    const device = owner === undefined ? undefined : this.devices.get(owner);
    return device?.iotEdge && device.deviceScope === scope ? device : undefined;
  }

  /** Builds a new device record from a registry PUT body, validating everything first. */
  private buildNew(deviceId: string, input: IdentityInput, twinChange?: TwinChange): DeviceRecord {
    checkDeviceId(deviceId);
    const now = this.now();
    const generationId = `${Date.now()}${randomBytes(3).readUIntBE(0, 3)}`;
    const fields = identityFields(deviceId, input, undefined, generationId, (s) => this.edgeByScope(s));
    const twin = emptyTwin(now);
    return {
      deviceId,
      generationId,
      etag: this.newEtag(),
      ...fields,
      statusUpdatedTime: NEVER,
      connectionState: "Disconnected",
      connectionStateUpdatedTime: NEVER,
      lastActivityTime: NEVER,
      twin: twinChange ? applyChange(twin, twinChange, now) : twin,
    };
  }

  /** Registers a device (PUT /devices/{id} without If-Match); `twin` optionally sets its twin (bulk import). */
  create(deviceId: string, input: IdentityInput, twin?: TwinChange): DeviceRecord {
    if (this.devices.has(deviceId)) throw errors.deviceExists(deviceId);
    const record = this.buildNew(deviceId, input, twin);
    this.save(record);
    this.sortedIds = null;
    return record;
  }

  /** Updates a device identity (PUT /devices/{id} with If-Match); `twin` optionally changes its twin too. */
  update(deviceId: string, input: IdentityInput, ifMatch: EtagCondition, twin?: TwinChange): DeviceRecord {
    const current = this.require(deviceId);
    checkEtag(ifMatch, current.etag, "device");
    const fields = identityFields(deviceId, input, current, current.generationId, (s) => this.edgeByScope(s));
    const next: DeviceRecord = {
      ...current,
      ...fields,
      etag: this.newEtag(),
      statusUpdatedTime: fields.status === current.status ? current.statusUpdatedTime : this.now(),
      twin: twin ? applyChange(current.twin, twin, this.now()) : current.twin,
    };
    this.save(next);
    if (
      fields.status === "disabled" ||
      fields.authType !== (current.authType ?? "sas") ||
      fields.primaryKey !== current.primaryKey ||
      fields.secondaryKey !== current.secondaryKey ||
      // New thumbprints revoke a certificate that no longer matches (rolling X.509 certificates).
      fields.primaryThumbprint !== (current.primaryThumbprint ?? null) ||
      fields.secondaryThumbprint !== (current.secondaryThumbprint ?? null)
    ) {
      this.hooks.deviceRevoked?.(deviceId);
    }
    if (twin?.desired) this.pushDesired(current, next, twin);
    return next;
  }

  delete(deviceId: string, ifMatch: EtagCondition): void {
    const current = this.require(deviceId);
    checkEtag(ifMatch, current.etag, "device");
    this.commit();
    this.store.delete(deviceId);
    this.hooks.recordChanged?.(deviceId, current);
    this.devices.delete(deviceId);
    this.sortedIds = null;
    this.hooks.deviceRevoked?.(deviceId);
  }

  /**
   * Creates many devices at once, all or none: every one is validated before any is written, and all are written
   * in one transaction (seeding large hubs; the REST bulk API is per device, see bulk.ts).
   */
  createMany(inputs: Array<{ id: string; input: IdentityInput }>): DeviceRecord[] {
    const seen = new Set<string>();
    const records = inputs.map(({ id, input }) => {
      if (this.devices.has(id) || seen.has(id)) throw errors.deviceExists(id);
      seen.add(id);
      return this.buildNew(id, input);
    });
    this.commit();
    this.store.putMany(records);
    for (const r of records) {
      this.hooks.recordChanged?.(r.deviceId, undefined);
      this.devices.set(r.deviceId, r);
    }
    this.sortedIds = null;
    return records;
  }

  list(top: number): DeviceRecord[] {
    this.commit();
    return this.ids()
      .slice(0, top)
      .map((id) => this.devices.get(id)!);
  }

  statistics() {
    this.commit();
    let enabled = 0;
    for (const d of this.devices.values()) if (d.status === "enabled") enabled++;
    return {
      totalDeviceCount: this.devices.size,
      enabledDeviceCount: enabled,
      disabledDeviceCount: this.devices.size - enabled,
    };
  }

  /**
   * The twin document, rendered on every call (cheap: it shares the twin's property trees). Keeping rendered
   * documents for queries would cost about 45 MB per 100,000 twins for little speed.
   */
  twin(deviceId: string): TwinDocument {
    this.commit();
    return renderTwin(this.require(deviceId), this.cloudToDeviceCount(deviceId));
  }

  /**
   * Service-side twin PATCH/PUT ("Service - Devices: Update Twin / Replace Twin"): tags and desired properties,
   * guarded by the twin etag. The device is sent the desired change as a merge patch: what a PATCH gave, or, for
   * a replace or a `"desired": null`, a patch that also names every removed key with null (see diffPatch).
   */
  updateTwin(
    deviceId: string,
    body: unknown,
    ifMatch: EtagCondition | undefined,
    replace: boolean,
  ): TwinDocument {
    return this.changeTwin(deviceId, twinChangeOf(body, replace), ifMatch);
  }

  /** Applies a twin change guarded by the twin etag; the device is told about desired changes. */
  changeTwin(deviceId: string, change: TwinChange, ifMatch: EtagCondition | undefined): TwinDocument {
    const current = this.require(deviceId);
    if (ifMatch !== undefined) checkEtag(ifMatch, twinEtag(current.twin.version), "twin");
    const twin = applyChange(current.twin, change, this.now());
    if (twin.version === current.twin.version) return this.twin(deviceId);
    const next = { ...current, twin };
    this.save(next);
    if (change.desired) this.pushDesired(current, next, change);
    return this.twin(deviceId);
  }

  /** Sends the device its desired-property change: the patch as given, or a diff with nulls for removed keys. */
  private pushDesired(before: DeviceRecord, after: DeviceRecord, change: TwinChange): void {
    if (!change.desired || after.twin.desired.version === before.twin.desired.version) return;
    const patch =
      change.replace || change.clear?.includes("desired")
        ? diffPatch(before.twin.desired.props, after.twin.desired.props)
        : change.desired;
    this.hooks.desiredChanged?.(after.deviceId, patch, after.twin.desired.version);
  }

  /**
   * Device-side reported patch (MQTT); returns the new reported `$version`. The change is group-committed:
   * acknowledge it from `afterCommit`.
   */
  updateReported(deviceId: string, patch: unknown): number {
    const current = this.require(deviceId);
    const now = this.now();
    const twin = applyChange(current.twin, { reported: patch as Record<string, unknown> }, now);
    this.saveGrouped({ ...current, twin, lastActivityTime: now });
    return twin.reported.version;
  }

  /** Connection state is kept for the twin and identity; it does not change the twin version. */
  setConnected(deviceId: string, connected: boolean): void {
    const current = this.devices.get(deviceId);
    if (!current) return;
    const now = this.now();
    this.saveGrouped({
      ...current,
      connectionState: connected ? "Connected" : "Disconnected",
      connectionStateUpdatedTime: now,
      lastActivityTime: connected ? now : current.lastActivityTime,
    });
  }

  touch(deviceId: string): void {
    const current = this.devices.get(deviceId);
    if (current) this.saveGrouped({ ...current, lastActivityTime: this.now() });
  }

  /**
   * Records a subscription of the device's MQTT session (see DeviceRecord). Group-committed like every other
   * device-side change: it is called from inside the broker's hooks, where a store failure must not throw.
   */
  setSessionSubscription(
    deviceId: string,
    which: "desiredSubscribed" | "twinResponsesSubscribed" | "methodsSubscribed",
    subscribed: boolean,
  ): void {
    const current = this.devices.get(deviceId);
    if (!current || (current[which] ?? false) === subscribed) return;
    this.saveGrouped({ ...current, [which]: subscribed });
  }

  /**
   * The session's cloud-to-device subscription (see DeviceRecord.cloudToDeviceSubscribedAt): made at `now` unless
   * the session already has it, or ended. Group-committed like setSessionSubscription.
   */
  setCloudToDeviceSubscription(deviceId: string, subscribed: boolean, now = Date.now()): void {
    const current = this.devices.get(deviceId);
    if (!current || (current.cloudToDeviceSubscribedAt !== undefined) === subscribed) return;
    const { cloudToDeviceSubscribedAt: _ended, ...rest } = current;
    this.saveGrouped(subscribed ? { ...current, cloudToDeviceSubscribedAt: now } : rest);
  }

  private ids(): string[] {
    if (!this.sortedIds) this.sortedIds = [...this.devices.keys()].sort(compareIds);
    return this.sortedIds;
  }

  /** TwinSource for the query engine: ascending deviceId, strictly after `afterId`. */
  *scan(afterId?: string): Iterable<TwinDocument> {
    const ids = this.idsAfter(afterId);
    for (let i = ids.start; i < ids.list.length; i++) {
      // The id list can be stale if a device was deleted while a page was being walked.
      const record = this.devices.get(ids.list[i]);
      if (record) yield renderTwin(record, this.cloudToDeviceCount(record.deviceId));
    }
  }

  /** The device records in ascending deviceId order, strictly after `afterId` (scan without rendering). */
  *scanRecords(afterId?: string): Iterable<DeviceRecord> {
    const ids = this.idsAfter(afterId);
    for (let i = ids.start; i < ids.list.length; i++) {
      const record = this.devices.get(ids.list[i]);
      if (record) yield record;
    }
  }

  /** The sorted ids (after the group commit) and the index of the first one greater than `afterId`. */
  private idsAfter(afterId: string | undefined): { list: string[]; start: number } {
    this.commit();
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

/** If-Match: `*` matches anything; otherwise the etag must be current. */
function checkEtag(ifMatch: EtagCondition, current: string, what: string): void {
  if (ifMatch !== "*" && ifMatch !== current) throw errors.staleEtag(what);
}
