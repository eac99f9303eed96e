import { errors } from "../errors.js";
import { getOwn, isPlainObject, setOwn, type TwinChange } from "./twin.js";

/**
 * A service-side twin body (PATCH or PUT /twins/{id}, "Service - Devices: Update Twin / Replace Twin") as a typed
 * TwinChange: the REST layer turns wire input into this, the registry applies it.
 */

/**
 * Read-only and identity fields a client may echo back when it sends a whole twin (the C# and Java SDKs'
 * ReplaceTwin send the Twin object they got): ignored, as IoT Hub ignores them.
 */
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
  "deviceScope",
  "parentScopes",
  "connectionStateUpdatedTime",
  "moduleId",
]);

/**
 * A service twin body as a TwinChange. `tags` and `properties.desired` are JSON merge patches (RFC 7386), so
 * `null` for either removes all of that section's properties (the Node SDK's twin e2e suite does
 * `twin.update({ properties: { desired: null } })` and expects an empty desired section).
 */
export function twinChangeOf(body: unknown, replace: boolean): TwinChange {
  if (!isPlainObject(body)) throw errors.badRequest("The twin patch must be a JSON object");
  const change: TwinChange = { replace };
  const clear: Array<"tags" | "desired"> = [];
  for (const key of Object.keys(body)) {
    if (key === "tags" || key === "properties") continue;
    // Read-only and identity fields may be echoed back by clients that send a whole twin; they are ignored
    // as IoT Hub does, but anything else is a mistake worth reporting.
    if (!READ_ONLY_TWIN_FIELDS.has(key))
      throw errors.badRequest(
        `Unknown twin field ${JSON.stringify(key)}: a patch may set tags and properties.desired`,
      );
  }
  const tags = getOwn(body, "tags");
  if (tags === null) {
    change.tags = {};
    clear.push("tags");
  } else if (tags !== undefined) change.tags = tags as Record<string, unknown>;
  const properties = getOwn(body, "properties");
  if (properties !== undefined && properties !== null) {
    if (!isPlainObject(properties)) throw errors.badRequest("properties must be a JSON object");
    for (const key of Object.keys(properties)) {
      if (key !== "desired" && key !== "reported")
        throw errors.badRequest(`Unknown section properties.${key}`);
    }
    if (getOwn(properties, "reported") !== undefined && !replace) {
      throw errors.badRequest(
        "Reported properties can only be set by the device: patch properties.desired or tags",
      );
    }
    const desired = getOwn(properties, "desired");
    if (desired === null) {
      change.desired = {};
      clear.push("desired");
    } else if (desired !== undefined) change.desired = stripReadOnly(desired);
  }
  if (clear.length > 0) change.clear = clear;
  return change;
}

/** Clients that send a whole twin back echo `$metadata` and `$version`; those are read-only. */
function stripReadOnly(section: unknown): Record<string, unknown> {
  if (!isPlainObject(section)) throw errors.badRequest("properties.desired must be a JSON object or null");
  const rest: Record<string, unknown> = {};
  for (const key of Object.keys(section)) {
    if (key !== "$metadata" && key !== "$version") setOwn(rest, key, getOwn(section, key));
  }
  return rest;
}
