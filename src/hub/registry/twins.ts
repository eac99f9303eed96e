import { Part } from "../store/store.js";
import { twinChangeOf } from "../twin/body.js";
import type { DeviceRecord } from "../twin/device.js";
import {
  applyChange,
  diffPatch,
  renderTwin,
  type SectionTexts,
  type TwinChange,
  twinEtag,
} from "../twin/twin.js";
import type { TwinDocument } from "../twin/types.js";
import type { Timestamps } from "./clock.js";
import type { Devices } from "./devices.js";
import { checkEtag, type EtagCondition } from "./etag.js";
import type { RegistryEmitter } from "./registry.js";
import type { UnitOfWork } from "./unit-of-work.js";

/**
 * Twins: reads, the service's twin updates, and the device's reported patches. The twin model itself (merge
 * patches, limits, metadata) is twin/twin.ts; this decides what a change is stored as and who hears of it.
 */
export class Twins {
  constructor(
    private readonly devices: Devices,
    private readonly work: UnitOfWork,
    private readonly time: Timestamps,
    private readonly events: RegistryEmitter,
    private readonly cloudToDeviceCount: (deviceId: string) => number,
  ) {}

  /**
   * The twin document, rendered on every call (cheap: it shares the twin's property trees). Keeping rendered
   * documents for queries would cost about 45 MB per 100,000 twins for little speed.
   */
  twin(deviceId: string): TwinDocument {
    this.work.commit();
    return renderTwin(this.devices.require(deviceId), this.cloudToDeviceCount(deviceId));
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

  /** Applies a twin change guarded by the twin etag, written at once; the device is told about desired changes. */
  changeTwin(deviceId: string, change: TwinChange, ifMatch: EtagCondition | undefined): TwinDocument {
    const current = this.devices.require(deviceId);
    if (ifMatch !== undefined) checkEtag(ifMatch, twinEtag(current.twin.version), "twin");
    const texts: SectionTexts = {};
    const twin = applyChange(current.twin, change, this.time.now(), texts);
    if (twin.version === current.twin.version) return this.twin(deviceId);
    const next = { ...current, twin };
    this.work.save([{ record: next, parts: Part.TWIN, texts }]);
    this.pushDesired(current, next, change);
    return this.twin(deviceId);
  }

  /**
   * Sends the device its desired-property change (the `desiredChanged` event): the patch as given, or a diff with
   * nulls for removed keys.
   */
  pushDesired(before: DeviceRecord, after: DeviceRecord, change: TwinChange): void {
    if (!change.desired || after.twin.desired.version === before.twin.desired.version) return;
    const patch =
      change.replace || change.clear?.includes("desired")
        ? diffPatch(before.twin.desired.props, after.twin.desired.props)
        : change.desired;
    this.events.emit("desiredChanged", after.deviceId, patch, after.twin.desired.version);
  }

  /**
   * Device-side reported patch (MQTT); returns the new reported `$version`. It changes the reported section, the
   * twin version and the device's lastActivityTime, and is group-committed: acknowledge it from `afterCommit`.
   */
  updateReported(deviceId: string, patch: unknown): number {
    const current = this.devices.require(deviceId);
    const now = this.time.now();
    // The size check's text of the properties is what the store writes: they are serialised once.
    const texts: SectionTexts = {};
    const twin = applyChange(current.twin, { reported: patch as Record<string, unknown> }, now, texts);
    this.work.stage({ ...current, twin, lastActivityTime: now }, Part.REPORTED | Part.ACTIVITY, texts);
    return twin.reported.version;
  }

  /** TwinSource for the query engine: ascending deviceId, strictly after `afterId` (after the group commit). */
  *scan(afterId?: string): Iterable<TwinDocument> {
    this.work.commit();
    for (const record of this.devices.scanRecords(afterId)) {
      yield renderTwin(record, this.cloudToDeviceCount(record.deviceId));
    }
  }
}
