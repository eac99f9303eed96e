import { randomBytes } from "node:crypto";
import { isValidDeviceId } from "../../shared/rules.js";
import { isBase64Key } from "../auth/credentials.js";
import { errors } from "../errors.js";
import type { AuthType, DeviceRecord } from "../twin/device.js";
import { isPlainObject } from "../twin/twin.js";

/**
 * Device identity fields as the registry accepts them ("Understand the identity registry in your IoT hub" >
 * "Device identity properties", and the "Service - Devices: Create Or Update Identity" REST reference,
 * api-version 2021-04-12). Wire bodies are turned into validated, typed fields here; the registry only stores them.
 */

/** A device identity body as a client sends it: anything may be missing or of the wrong type. */
export interface IdentityInput {
  deviceId?: unknown;
  status?: unknown;
  statusReason?: unknown;
  authentication?: unknown;
  capabilities?: unknown;
  deviceScope?: unknown;
  parentScopes?: unknown;
}

/** The identity fields of a DeviceRecord, validated. */
export interface IdentityFields {
  status: "enabled" | "disabled";
  statusReason: string | null;
  authType: AuthType;
  primaryKey: string;
  secondaryKey: string;
  primaryThumbprint: string | null;
  secondaryThumbprint: string | null;
  iotEdge: boolean;
  deviceScope: string | null;
  parentScopes: string[];
}

/** "statusReason: A 128 character-long string that stores the reason for the device identity status." */
export const MAX_STATUS_REASON = 128;
/** X.509 thumbprints: the hex SHA-1 (40 digits) or SHA-256 (64 digits) digest of the certificate. */
const THUMBPRINT = /^(?:[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})$/;
/** Edge device scopes: `ms-azure-iot-edge://<deviceId>-<number>` (what IoT Hub generates). */
const EDGE_SCOPE_PREFIX = "ms-azure-iot-edge://";

export function checkDeviceId(deviceId: string): void {
  if (!isValidDeviceId(deviceId)) {
    throw errors.badRequest(
      `Invalid device ID ${JSON.stringify(deviceId.slice(0, 140))}: use up to 128 letters, digits and -.+%_#*?!(),:=@$'`,
    );
  }
}

/** The device ID an edge scope names (the part between the prefix and the last "-"), if it has that shape. */
export function scopeOwner(scope: string): string | undefined {
  if (!scope.startsWith(EDGE_SCOPE_PREFIX)) return undefined;
  const rest = scope.slice(EDGE_SCOPE_PREFIX.length);
  const dash = rest.lastIndexOf("-");
  if (dash <= 0 || !/^\d+$/.test(rest.slice(dash + 1))) return undefined;
  return rest.slice(0, dash);
}

/**
 * Validates an identity body against the current record (undefined when creating) and returns the fields to
 * store. `edgeByScope` finds the edge device that owns a scope. Throws a 400 HubError naming the field.
 */
export function identityFields(
  deviceId: string,
  input: IdentityInput,
  current: DeviceRecord | undefined,
  generationId: string,
  edgeByScope: (scope: string) => DeviceRecord | undefined,
): IdentityFields {
  if (!isPlainObject(input)) throw errors.badRequest("The device identity must be a JSON object");
  if (input.deviceId !== undefined && input.deviceId !== deviceId) {
    throw errors.badRequest("The deviceId in the body does not match the one in the URL");
  }
  const status = parseStatus(input.status, current?.status ?? "enabled");
  const statusReason = parseStatusReason(input.statusReason, current?.statusReason ?? null);
  const auth = parseAuthentication(input.authentication, current);
  const iotEdge = parseEdge(input.capabilities, current?.iotEdge ?? false);
  const deviceScope = parseDeviceScope(
    deviceId,
    input.deviceScope,
    iotEdge,
    current,
    generationId,
    edgeByScope,
  );
  const parentScopes = parseParentScopes(
    deviceId,
    input.parentScopes,
    iotEdge,
    deviceScope,
    current,
    edgeByScope,
  );
  return { status, statusReason, ...auth, iotEdge, deviceScope, parentScopes };
}

function parseStatus(value: unknown, fallback: "enabled" | "disabled"): "enabled" | "disabled" {
  if (value === undefined || value === null) return fallback;
  if (value === "enabled" || value === "disabled") return value;
  throw errors.badRequest(`Invalid status ${JSON.stringify(value)}: use "enabled" or "disabled"`);
}

function parseStatusReason(value: unknown, fallback: string | null): string | null {
  if (value === undefined) return fallback;
  if (value === null) return null;
  if (typeof value !== "string") throw errors.badRequest("statusReason must be a string");
  // "A 128 character-long string ... All UTF-8 characters are allowed." (identity registry doc)
  if ([...value].length > MAX_STATUS_REASON) {
    throw errors.badRequest(`statusReason is longer than ${MAX_STATUS_REASON} characters`);
  }
  return value;
}

function parseEdge(capabilities: unknown, fallback: boolean): boolean {
  if (capabilities === undefined || capabilities === null) return fallback;
  if (!isPlainObject(capabilities)) throw errors.badRequest("capabilities must be a JSON object");
  const edge = capabilities.iotEdge;
  if (edge === undefined || edge === null) return fallback;
  if (typeof edge !== "boolean") throw errors.badRequest("capabilities.iotEdge must be true or false");
  return edge;
}

type AuthFields = Pick<
  IdentityFields,
  "authType" | "primaryKey" | "secondaryKey" | "primaryThumbprint" | "secondaryThumbprint"
>;

const empty = (v: unknown) => v === undefined || v === null || v === "";

/**
 * `authentication` ("AuthenticationMechanism": type sas | selfSigned | certificateAuthority, symmetricKey,
 * x509Thumbprint). Without a type, thumbprints mean selfSigned and anything else sas (what the SDKs send). SAS keys
 * left empty are generated ("If the keys are not provided, IoT Hub generates them") or kept on update.
 */
function parseAuthentication(value: unknown, current: DeviceRecord | undefined): AuthFields {
  const keep: AuthFields | undefined = current && {
    authType: current.authType ?? "sas",
    primaryKey: current.primaryKey,
    secondaryKey: current.secondaryKey,
    primaryThumbprint: current.primaryThumbprint ?? null,
    secondaryThumbprint: current.secondaryThumbprint ?? null,
  };
  if (value === undefined || value === null) return keep ?? sasFields(undefined, undefined, undefined);
  if (!isPlainObject(value)) throw errors.badRequest("authentication must be a JSON object");
  const sym = value.symmetricKey;
  const x509 = value.x509Thumbprint;
  if (!empty(sym) && !isPlainObject(sym))
    throw errors.badRequest("authentication.symmetricKey must be an object");
  if (!empty(x509) && !isPlainObject(x509))
    throw errors.badRequest("authentication.x509Thumbprint must be an object");
  const keys = (isPlainObject(sym) ? sym : {}) as { primaryKey?: unknown; secondaryKey?: unknown };
  const prints = (isPlainObject(x509) ? x509 : {}) as {
    primaryThumbprint?: unknown;
    secondaryThumbprint?: unknown;
  };
  const hasKeys = !empty(keys.primaryKey) || !empty(keys.secondaryKey);
  const hasPrints = !empty(prints.primaryThumbprint) || !empty(prints.secondaryThumbprint);
  let type = value.type;
  if (empty(type)) type = hasPrints ? "selfSigned" : "sas";
  switch (type) {
    case "sas": {
      if (hasPrints)
        throw errors.badRequest("A device with authentication type sas cannot have X.509 thumbprints");
      const reuse = keep?.authType === "sas" ? keep : undefined;
      return sasFields(keys, reuse?.primaryKey, reuse?.secondaryKey);
    }
    case "selfSigned": {
      if (hasKeys) throw errors.badRequest("A selfSigned device cannot have symmetric keys");
      const primary = thumbprint(prints.primaryThumbprint, "primaryThumbprint");
      const secondary = thumbprint(prints.secondaryThumbprint, "secondaryThumbprint");
      // "You have the option of specifying a primary thumbprint or a secondary thumbprint or both" (IoT Hub
      // security guide, X.509 thumbprints); both must use the same digest (the C# SDK's X509Thumbprint.IsValid
      // refuses a SHA-1 next to a SHA-256 one).
      if (primary === null && secondary === null) {
        throw errors.badRequest(
          "A selfSigned device needs authentication.x509Thumbprint with a primary or secondary thumbprint",
        );
      }
      if (primary !== null && secondary !== null && primary.length !== secondary.length) {
        throw errors.badRequest(
          "The primary and secondary thumbprints must both be SHA-1 or both be SHA-256",
        );
      }
      return {
        authType: "selfSigned",
        primaryKey: "",
        secondaryKey: "",
        primaryThumbprint: primary,
        secondaryThumbprint: secondary,
      };
    }
    case "certificateAuthority":
      if (hasKeys || hasPrints) {
        throw errors.badRequest("A certificateAuthority device has neither symmetric keys nor thumbprints");
      }
      return {
        authType: "certificateAuthority",
        primaryKey: "",
        secondaryKey: "",
        primaryThumbprint: null,
        secondaryThumbprint: null,
      };
    default:
      throw errors.badRequest(
        `Invalid authentication type ${JSON.stringify(type)}: use "sas", "selfSigned" or "certificateAuthority"`,
      );
  }
}

function sasFields(
  keys: { primaryKey?: unknown; secondaryKey?: unknown } | undefined,
  primary: string | undefined,
  secondary: string | undefined,
): AuthFields {
  const pick = (value: unknown, existing: string | undefined, which: string) => {
    if (empty(value)) return existing ?? randomBytes(32).toString("base64");
    if (typeof value !== "string" || !isBase64Key(value)) {
      throw errors.badRequest(`The ${which} key must be base64 of 16 to 64 bytes`);
    }
    return value;
  };
  return {
    authType: "sas",
    primaryKey: pick(keys?.primaryKey, primary, "primary"),
    secondaryKey: pick(keys?.secondaryKey, secondary, "secondary"),
    primaryThumbprint: null,
    secondaryThumbprint: null,
  };
}

function thumbprint(value: unknown, name: string): string | null {
  if (empty(value)) return null;
  if (typeof value !== "string" || !THUMBPRINT.test(value)) {
    throw errors.badRequest(
      `authentication.x509Thumbprint.${name} must be a SHA-1 (40 hex digits) or SHA-256 (64 hex digits) thumbprint`,
    );
  }
  return value;
}

/**
 * `deviceScope`: "The scope of the device. Auto-generated and immutable for edge devices and modifiable in leaf
 * devices to create child/parent relationship" (REST reference, Device.deviceScope). A leaf device's scope must
 * be the scope of an edge device.
 */
function parseDeviceScope(
  deviceId: string,
  value: unknown,
  iotEdge: boolean,
  current: DeviceRecord | undefined,
  generationId: string,
  edgeByScope: (scope: string) => DeviceRecord | undefined,
): string | null {
  if (value !== undefined && value !== null && typeof value !== "string")
    throw errors.badRequest("deviceScope must be a string");
  const given = empty(value) ? undefined : (value as string);
  if (iotEdge) {
    const own = current?.iotEdge ? current.deviceScope : undefined;
    if (own) {
      if (given !== undefined && given !== own) {
        throw errors.badRequest(
          "The deviceScope of an edge device is generated by IoT Hub and cannot be changed",
        );
      }
      return own;
    }
    // A new edge device: its scope is generated; an imported one may bring the scope it had (same shape, same ID).
    if (given !== undefined && scopeOwner(given) !== deviceId) {
      throw errors.badRequest(
        `The deviceScope of an edge device is generated by IoT Hub: leave it out (it will be ${EDGE_SCOPE_PREFIX}${deviceId}-<number>)`,
      );
    }
    return given ?? `${EDGE_SCOPE_PREFIX}${deviceId}-${generationId}`;
  }
  if (value === undefined) return current && !current.iotEdge ? (current.deviceScope ?? null) : null;
  if (given === undefined) return null;
  if (!edgeByScope(given)) {
    throw errors.badRequest(
      `deviceScope ${JSON.stringify(given.slice(0, 300))} is not the scope of an edge device in this hub: use the deviceScope of an edge device (capabilities.iotEdge = true)`,
    );
  }
  return given;
}

/**
 * `parentScopes`: "The scopes of the upper level edge devices if applicable. Only available for edge devices"
 * (REST reference). An edge device has at most one parent; a leaf device's parent is its deviceScope, so its
 * parentScopes is `[deviceScope]` (or empty).
 */
function parseParentScopes(
  deviceId: string,
  value: unknown,
  iotEdge: boolean,
  deviceScope: string | null,
  current: DeviceRecord | undefined,
  edgeByScope: (scope: string) => DeviceRecord | undefined,
): string[] {
  let list: string[] | undefined;
  if (value !== undefined && value !== null) {
    if (!Array.isArray(value) || value.some((s) => typeof s !== "string"))
      throw errors.badRequest("parentScopes must be an array of strings");
    list = (value as string[]).filter((s) => s !== "");
  }
  if (!iotEdge) {
    const expected = deviceScope ? [deviceScope] : [];
    if (list !== undefined && list.length > 0 && (list.length !== 1 || list[0] !== deviceScope)) {
      throw errors.badRequest("The parentScopes of a leaf device can only hold its deviceScope");
    }
    return expected;
  }
  if (list === undefined) return current?.iotEdge ? (current.parentScopes ?? []) : [];
  if (list.length > 1)
    throw errors.badRequest("An edge device can have at most one parent: parentScopes holds one scope");
  if (list.length === 0) return [];
  const parent = edgeByScope(list[0]!);
  if (!parent) {
    throw errors.badRequest(
      `parentScopes[0] ${JSON.stringify(list[0]!.slice(0, 300))} is not the scope of an edge device in this hub`,
    );
  }
  // No cycles: walking up from the parent must never come back to this device. The walk is bounded, since
  // stored hierarchies are acyclic (every change passes this check).
  let node: DeviceRecord | undefined = parent;
  for (let steps = 0; node && steps < 1000; steps++) {
    if (node.deviceId === deviceId)
      throw errors.badRequest("parentScopes would make this edge device its own ancestor");
    const up: string | undefined = node.parentScopes?.[0];
    node = up ? edgeByScope(up) : undefined;
  }
  return list;
}
