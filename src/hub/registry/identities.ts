import { randomBytes } from "node:crypto";
import { errors } from "../errors.js";
import { Part } from "../store/store.js";
import { type DeviceRecord, NEVER } from "../twin/device.js";
import { applyChange, emptyTwin, type TwinChange } from "../twin/twin.js";
import type { Timestamps } from "./clock.js";
import type { Devices } from "./devices.js";
import { checkEtag, type EtagCondition, newEtag } from "./etag.js";
import { checkDeviceId, type IdentityInput, identityFields, scopeOwner } from "./identity-fields.js";
import type { RegistryEmitter } from "./registry.js";
import type { Twins } from "./twins.js";
import type { UnitOfWork } from "./unit-of-work.js";

/**
 * The identity registry's operations ("Service - Devices": create, update, delete, list, statistics). All
 * service-side, so written at once (see UnitOfWork). The identity fields' rules are identity-fields.ts.
 */
export class Identities {
  constructor(
    private readonly devices: Devices,
    private readonly work: UnitOfWork,
    private readonly time: Timestamps,
    private readonly twins: Twins,
    private readonly events: RegistryEmitter,
  ) {}

  /** The edge device whose own deviceScope is `scope`, if any (the scope names its device; see scopeOwner). */
  edgeByScope(scope: string): DeviceRecord | undefined {
    const owner = scopeOwner(scope);
    const device = owner === undefined ? undefined : this.devices.find(owner);
    return device?.iotEdge && device.deviceScope === scope ? device : undefined;
  }

  /** Builds a new device record from a registry PUT body, validating everything first. */
  private buildNew(deviceId: string, input: IdentityInput, twinChange?: TwinChange): DeviceRecord {
    checkDeviceId(deviceId);
    const now = this.time.now();
    const generationId = `${Date.now()}${randomBytes(3).readUIntBE(0, 3)}`;
    const fields = identityFields(deviceId, input, undefined, generationId, (s) => this.edgeByScope(s));
    const twin = emptyTwin(now);
    return {
      deviceId,
      generationId,
      etag: newEtag(),
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
    this.work.save([{ record, parts: Part.ALL }]);
    return record;
  }

  /** Updates a device identity (PUT /devices/{id} with If-Match); `twin` optionally changes its twin too. */
  update(deviceId: string, input: IdentityInput, ifMatch: EtagCondition, twin?: TwinChange): DeviceRecord {
    const current = this.devices.require(deviceId);
    checkEtag(ifMatch, current.etag, "device");
    const fields = identityFields(deviceId, input, current, current.generationId, (s) => this.edgeByScope(s));
    const next: DeviceRecord = {
      ...current,
      ...fields,
      etag: newEtag(),
      statusUpdatedTime: fields.status === current.status ? current.statusUpdatedTime : this.time.now(),
      twin: twin ? applyChange(current.twin, twin, this.time.now()) : current.twin,
    };
    this.work.save([{ record: next, parts: twin ? Part.IDENTITY | Part.TWIN : Part.IDENTITY }]);
    if (
      fields.status === "disabled" ||
      fields.authType !== (current.authType ?? "sas") ||
      fields.primaryKey !== current.primaryKey ||
      fields.secondaryKey !== current.secondaryKey ||
      // New thumbprints revoke a certificate that no longer matches (rolling X.509 certificates).
      fields.primaryThumbprint !== (current.primaryThumbprint ?? null) ||
      fields.secondaryThumbprint !== (current.secondaryThumbprint ?? null)
    ) {
      this.events.emit("deviceRevoked", deviceId);
    }
    if (twin?.desired) this.twins.pushDesired(current, next, twin);
    return next;
  }

  delete(deviceId: string, ifMatch: EtagCondition): void {
    const current = this.devices.require(deviceId);
    checkEtag(ifMatch, current.etag, "device");
    this.work.remove(deviceId);
    this.events.emit("deviceRevoked", deviceId);
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
    this.work.save(records.map((record) => ({ record, parts: Part.ALL })));
    return records;
  }

  list(top: number): DeviceRecord[] {
    this.work.commit();
    return this.devices
      .ids()
      .slice(0, top)
      .map((id) => this.devices.require(id));
  }

  statistics() {
    this.work.commit();
    let enabled = 0;
    for (const d of this.devices.values()) if (d.status === "enabled") enabled++;
    return {
      totalDeviceCount: this.devices.size,
      enabledDeviceCount: enabled,
      disabledDeviceCount: this.devices.size - enabled,
    };
  }
}
