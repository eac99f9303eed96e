import { errors, HubError } from "./errors.js";
import { ERROR_CODES } from "./protocol.js";
import { checkDeviceId, type IdentityInput } from "./registry/identity-fields.js";
import type { DeviceRegistry } from "./registry/registry.js";
import { getOwn, isPlainObject, type TwinChange } from "./twin/twin.js";

/**
 * Bulk registry operations: `POST /devices` ("Service - Bulk Registry: Update Registry", api-version 2021-04-12),
 * what azure-iothub's addDevices/updateDevices/removeDevices send. The body is an array of up to 100
 * ExportImportDevice objects; each names its device with `id` and says what to do with `importMode`.
 * Devices are processed one by one, in order: one device's failure does not stop the others, and comes back in
 * the result's `errors` (BulkRegistryOperationResult: `{ isSuccessful, errors: [{ deviceId, errorCode,
 * errorStatus }], warnings }`, answered with 200 as the C# SDK, which requires 200 before it reads it, expects).
 */

/** "ImportMode" (the C# SDK's enum, same names on the wire, compared case-insensitively as the SDKs' casing varies). */
export const IMPORT_MODES = [
  "createOrUpdate",
  "create",
  "update",
  "updateIfMatchETag",
  "createOrUpdateIfMatchETag",
  "delete",
  "deleteIfMatchETag",
  "updateTwin",
  "updateTwinIfMatchETag",
] as const;
export type ImportMode = (typeof IMPORT_MODES)[number];

/** "The maximum number of devices in a bulk operation is 100" (the SDKs refuse more before sending). */
export const MAX_BULK = 100;

export interface BulkItem {
  id: string;
  mode: ImportMode;
  /** Identity etag (eTag) for the *IfMatchETag identity modes, unquoted. */
  eTag?: string;
  /** Twin etag (twinETag) for updateTwinIfMatchETag, unquoted. */
  twinETag?: string;
  identity: IdentityInput;
  /** Tags and desired properties to write over the twin's (ExportImportDevice.tags / properties.desired). */
  twin?: TwinChange;
}

export interface BulkError {
  deviceId: string;
  errorCode: string;
  errorStatus: string;
}

export interface BulkResult {
  isSuccessful: boolean;
  errors: BulkError[];
  warnings: Array<{ deviceId: string; warningCode: string; warningStatus: string }>;
}

const MODES_BY_LOWER = new Map<string, ImportMode>(IMPORT_MODES.map((m) => [m.toLowerCase(), m]));

/**
 * Reads a bulk request body into typed items. A body that is not 1 to 100 objects with an `id`, or an unknown
 * importMode, is refused whole (400) before anything is done.
 */
export function parseBulk(body: unknown, unquote: (etag: string) => string): BulkItem[] {
  if (!Array.isArray(body) || body.length === 0 || body.length > MAX_BULK) {
    throw errors.badRequest(`The body must be an array of 1 to ${MAX_BULK} device identities`);
  }
  const seen = new Set<string>();
  return body.map((item: unknown, i) => {
    if (!isPlainObject(item) || typeof item.id !== "string" || item.id === "") {
      throw errors.badRequest(`Item ${i} must be an object with an "id"`);
    }
    // A malformed ID makes the request malformed: refused whole, like a missing id.
    checkDeviceId(item.id);
    // "A device identity can be specified only once in the list." (Bulk Registry - Update Registry)
    if (seen.has(item.id)) {
      throw errors.badRequest(
        `Device ${JSON.stringify(item.id)} appears more than once: name each device once`,
      );
    }
    seen.add(item.id);
    // ImportMode's zero value is createOrUpdate: a missing importMode means that.
    const given = getOwn(item, "importMode") ?? "createOrUpdate";
    const mode = typeof given === "string" ? MODES_BY_LOWER.get(given.toLowerCase()) : undefined;
    if (!mode) {
      throw errors.badRequest(
        `Item ${i}: importMode ${JSON.stringify(given)} is not one of ${IMPORT_MODES.join(", ")}`,
      );
    }
    const { id, importMode: _m, tags, properties, ...identity } = item;
    // IoT Hub reads these names case-insensitively: azure-iothub sends the device's `etag` as it got it.
    const eTag = ownCaseless(item, "etag");
    const twinETag = ownCaseless(item, "twinetag");
    const etagOf = (v: unknown, name: string) => {
      if (v === undefined || v === null || v === "") return undefined;
      if (typeof v !== "string") throw errors.badRequest(`Item ${i}: ${name} must be a string`);
      return unquote(v);
    };
    return {
      id: id as string,
      mode,
      eTag: etagOf(eTag, "eTag"),
      twinETag: etagOf(twinETag, "twinETag"),
      identity: identity as IdentityInput,
      twin: twinOf(tags, properties, i),
    };
  });
}

/** The value of the first own key of `o` whose lower-case form is `lower`. */
function ownCaseless(o: Record<string, unknown>, lower: string): unknown {
  for (const k of Object.keys(o)) if (k.toLowerCase() === lower) return getOwn(o, k);
  return undefined;
}

/** ExportImportDevice.tags / properties.desired / properties.reported overwrite those sections of the twin. */
function twinOf(tags: unknown, properties: unknown, i: number): TwinChange | undefined {
  const change: TwinChange = { replace: true };
  let any = false;
  if (tags !== undefined && tags !== null) {
    change.tags = tags as Record<string, unknown>;
    any = true;
  }
  if (properties !== undefined && properties !== null) {
    if (!isPlainObject(properties)) throw errors.badRequest(`Item ${i}: properties must be a JSON object`);
    const desired = getOwn(properties, "desired");
    const reported = getOwn(properties, "reported");
    if (desired !== undefined && desired !== null) {
      change.desired = desired as Record<string, unknown>;
      any = true;
    }
    if (reported !== undefined && reported !== null) {
      change.reported = reported as Record<string, unknown>;
      any = true;
    }
  }
  return any ? change : undefined;
}

/** Runs the items in order; every failure becomes an entry of `errors`, with IoT Hub's error code. */
export function runBulk(registry: DeviceRegistry, items: BulkItem[]): BulkResult {
  const failures: BulkError[] = [];
  for (const item of items) {
    try {
      runOne(registry, item);
    } catch (error) {
      const hub =
        error instanceof HubError
          ? error
          : errors.internal("The hub failed to process this device; see its log");
      failures.push({ deviceId: item.id, errorCode: hub.code, errorStatus: hub.message });
    }
  }
  return { isSuccessful: failures.length === 0, errors: failures, warnings: [] };
}

function needEtag(etag: string | undefined, what: string): string {
  if (etag === undefined) {
    throw new HubError(
      412,
      ERROR_CODES.preconditionFailed,
      `This importMode needs the ${what} of the device`,
    );
  }
  return etag;
}

function runOne(registry: DeviceRegistry, item: BulkItem): void {
  const { id, identity, twin } = item;
  const exists = registry.find(id) !== undefined;
  switch (item.mode) {
    case "create":
      registry.identities.create(id, identity, twin);
      return;
    case "update":
      registry.require(id);
      registry.identities.update(id, identity, "*", twin);
      return;
    case "updateIfMatchETag":
      registry.require(id);
      registry.identities.update(id, identity, needEtag(item.eTag, "eTag"), twin);
      return;
    case "createOrUpdate":
      if (exists) registry.identities.update(id, identity, "*", twin);
      else registry.identities.create(id, identity, twin);
      return;
    case "createOrUpdateIfMatchETag":
      if (exists) registry.identities.update(id, identity, needEtag(item.eTag, "eTag"), twin);
      else registry.identities.create(id, identity, twin);
      return;
    case "delete":
      registry.identities.delete(id, "*");
      return;
    case "deleteIfMatchETag":
      registry.require(id);
      registry.identities.delete(id, needEtag(item.eTag, "eTag"));
      return;
    case "updateTwin":
    case "updateTwinIfMatchETag": {
      registry.require(id);
      const ifMatch = item.mode === "updateTwin" ? undefined : needEtag(item.twinETag, "twinETag");
      if (twin) registry.twins.changeTwin(id, twin, ifMatch);
      return;
    }
  }
}
