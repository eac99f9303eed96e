import { randomBytes } from "node:crypto";
import { isBase64Key } from "./auth/credentials.js";
import { errors } from "./errors.js";
import type { Store } from "./store/store.js";
import { type DeviceRecord, NEVER } from "./twin/device.js";
import { applyChange, emptyTwin, isPlainObject, renderTwin, type TwinChange, twinEtag } from "./twin/twin.js";
import type { TwinDocument, TwinSource } from "./twin/types.js";

/** Device IDs: up to 128 ASCII letters, digits and `-.+%_#*?!(),:=@$'` ("Understand the identity registry"). */
const DEVICE_ID = /^[A-Za-z0-9\-.+%_#*?!(),:=@$']{1,128}$/;

export interface IdentityInput {
  deviceId?: unknown;
  status?: unknown;
  statusReason?: unknown;
  authentication?: { symmetricKey?: { primaryKey?: unknown; secondaryKey?: unknown }; type?: unknown } | null;
  capabilities?: { iotEdge?: unknown } | null;
}

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

  private now(): string {
    return this.clock().toISOString();
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

  /** Builds a new device record from a registry PUT body, validating everything first. */
  private buildNew(deviceId: string, input: IdentityInput): DeviceRecord {
    if (!DEVICE_ID.test(deviceId)) {
      throw errors.badRequest(
        `Invalid device ID ${JSON.stringify(deviceId.slice(0, 140))}: use up to 128 letters, digits and -.+%_#*?!(),:=@$'`,
      );
    }
    const now = this.now();
    const status = parseStatus(input.status, "enabled");
    const keys = parseKeys(input, undefined);
    return {
      deviceId,
      generationId: `${Date.now()}${randomBytes(3).readUIntBE(0, 3)}`,
      etag: this.newEtag(),
      status,
      statusReason: typeof input.statusReason === "string" ? input.statusReason : null,
      statusUpdatedTime: NEVER,
      connectionState: "Disconnected",
      connectionStateUpdatedTime: NEVER,
      lastActivityTime: NEVER,
      primaryKey: keys.primaryKey,
      secondaryKey: keys.secondaryKey,
      iotEdge: input.capabilities?.iotEdge === true,
      twin: emptyTwin(now),
    };
  }

  create(deviceId: string, input: IdentityInput): DeviceRecord {
    checkBodyId(deviceId, input);
    if (this.devices.has(deviceId)) throw errors.deviceExists(deviceId);
    const record = this.buildNew(deviceId, input);
    this.save(record);
    this.sortedIds = null;
    return record;
  }

  update(deviceId: string, input: IdentityInput, ifMatch: string): DeviceRecord {
    checkBodyId(deviceId, input);
    const current = this.require(deviceId);
    checkEtag(ifMatch, current.etag, "device");
    const status = parseStatus(input.status, current.status);
    const keys = parseKeys(input, current);
    const next: DeviceRecord = {
      ...current,
      etag: this.newEtag(),
      status,
      statusReason: typeof input.statusReason === "string" ? input.statusReason : current.statusReason,
      statusUpdatedTime: status === current.status ? current.statusUpdatedTime : this.now(),
      primaryKey: keys.primaryKey,
      secondaryKey: keys.secondaryKey,
      iotEdge:
        input.capabilities?.iotEdge === undefined ? current.iotEdge : input.capabilities.iotEdge === true,
    };
    this.save(next);
    if (
      status === "disabled" ||
      keys.primaryKey !== current.primaryKey ||
      keys.secondaryKey !== current.secondaryKey
    ) {
      this.hooks.deviceRevoked?.(deviceId);
    }
    return next;
  }

  delete(deviceId: string, ifMatch: string): void {
    const current = this.require(deviceId);
    checkEtag(ifMatch, current.etag, "device");
    this.commit();
    this.store.delete(deviceId);
    this.hooks.recordChanged?.(deviceId, current);
    this.devices.delete(deviceId);
    this.sortedIds = null;
    this.hooks.deviceRevoked?.(deviceId);
  }

  /** Bulk create (the SDK's `addDevices`): all are validated before any is written, written in one transaction. */
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
    return renderTwin(this.require(deviceId));
  }

  /** Service-side twin PATCH/PUT: tags and desired properties, guarded by the twin etag. */
  updateTwin(deviceId: string, body: unknown, ifMatch: string | undefined, replace: boolean): TwinDocument {
    const current = this.require(deviceId);
    if (ifMatch !== undefined) checkEtag(ifMatch, twinEtag(current.twin.version), "twin");
    if (!isPlainObject(body)) throw errors.badRequest("The twin patch must be a JSON object");
    const change: TwinChange = { replace };
    for (const key of Object.keys(body)) {
      if (key === "tags") continue;
      if (key === "properties") continue;
      // Read-only and identity fields may be echoed back by clients that send a whole twin; they are ignored
      // as IoT Hub does, but anything else is a mistake worth reporting.
      if (!READ_ONLY_TWIN_FIELDS.has(key))
        throw errors.badRequest(
          `Unknown twin field ${JSON.stringify(key)}: a patch may set tags and properties.desired`,
        );
    }
    if (body.tags !== undefined) change.tags = body.tags as Record<string, unknown>;
    if (body.properties !== undefined) {
      if (!isPlainObject(body.properties)) throw errors.badRequest("properties must be a JSON object");
      for (const key of Object.keys(body.properties)) {
        if (key !== "desired" && key !== "reported")
          throw errors.badRequest(`Unknown section properties.${key}`);
      }
      if (body.properties.reported !== undefined && !replace) {
        throw errors.badRequest(
          "Reported properties can only be set by the device: patch properties.desired or tags",
        );
      }
      if (body.properties.desired !== undefined) change.desired = stripReadOnly(body.properties.desired);
    }
    const twin = applyChange(current.twin, change, this.now());
    if (twin.version === current.twin.version) return this.twin(deviceId);
    this.save({ ...current, twin });
    if (change.desired) {
      this.hooks.desiredChanged?.(
        deviceId,
        replace ? twin.desired.props : change.desired,
        twin.desired.version,
      );
    }
    return this.twin(deviceId);
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

  /** Records whether the device's MQTT session is subscribed to desired-property updates (see DeviceRecord). */
  setDesiredSubscription(deviceId: string, subscribed: boolean): void {
    const current = this.devices.get(deviceId);
    if (!current || (current.desiredSubscribed ?? false) === subscribed) return;
    this.save({ ...current, desiredSubscribed: subscribed });
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
      if (record) yield renderTwin(record);
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

const READ_ONLY_TWIN_FIELDS = new Set([
  "deviceId",
  "etag",
  "deviceEtag",
  "status",
  "statusReason",
  "statusUpdateTime",
  "connectionState",
  "lastActivityTime",
  "cloudToDeviceMessageCount",
  "authenticationType",
  "x509Thumbprint",
  "modelId",
  "version",
  "capabilities",
  "moduleId",
]);

export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Clients that send a whole twin back echo `$metadata` and `$version`; those are read-only. */
function stripReadOnly(section: unknown): Record<string, unknown> {
  if (!isPlainObject(section)) throw errors.badRequest("properties.desired must be a JSON object");
  const { $metadata: _m, $version: _v, ...rest } = section;
  return rest;
}

function checkBodyId(deviceId: string, input: IdentityInput): void {
  if (!isPlainObject(input)) throw errors.badRequest("The device identity must be a JSON object");
  if (input.deviceId !== undefined && input.deviceId !== deviceId) {
    throw errors.badRequest("The deviceId in the body does not match the one in the URL");
  }
}

/** If-Match: `*` matches anything; otherwise the (quoted or bare) etag must be current. */
function checkEtag(ifMatch: string, current: string, what: string): void {
  const given = ifMatch
    .trim()
    .replace(/^W\//, "")
    .replace(/^"(.*)"$/, "$1");
  if (given !== "*" && given !== current) throw errors.staleEtag(what);
}

function parseStatus(value: unknown, fallback: "enabled" | "disabled"): "enabled" | "disabled" {
  if (value === undefined || value === null) return fallback;
  if (value === "enabled" || value === "disabled") return value;
  throw errors.badRequest(`Invalid status ${JSON.stringify(value)}: use "enabled" or "disabled"`);
}

function parseKeys(
  input: IdentityInput,
  current: DeviceRecord | undefined,
): { primaryKey: string; secondaryKey: string } {
  const auth = input.authentication;
  if (auth?.type !== undefined && auth.type !== null && auth.type !== "sas") {
    throw errors.badRequest(
      `Authentication type ${JSON.stringify(auth.type)} is not supported by local-hub: use "sas"`,
    );
  }
  const pick = (value: unknown, existing: string | undefined, which: string) => {
    if (value === undefined || value === null || value === "")
      return existing ?? randomBytes(32).toString("base64");
    if (typeof value !== "string" || !isBase64Key(value)) {
      throw errors.badRequest(`The ${which} key must be base64 of 16 to 64 bytes`);
    }
    return value;
  };
  return {
    primaryKey: pick(auth?.symmetricKey?.primaryKey, current?.primaryKey, "primary"),
    secondaryKey: pick(auth?.symmetricKey?.secondaryKey, current?.secondaryKey, "secondary"),
  };
}
