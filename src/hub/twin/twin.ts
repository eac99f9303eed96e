import { errors } from "../errors.js";
import type { DeviceRecord, SectionState, TwinState } from "./device.js";
import type { TwinDocument, TwinSection } from "./types.js";

/**
 * Twin semantics from "Understand and use device twins in IoT Hub": JSON merge patches (null deletes),
 * `$version` per section, one twin `version` per change, `$metadata` with `$lastUpdated`, and the limits below.
 */
export const LIMITS = {
  /** Keys: up to 1 KB of UTF-8, no control characters, '.', '$' or space. */
  keyBytes: 1024,
  /** String values: up to 4 KB of UTF-8. */
  stringBytes: 4096,
  /** "All JSON objects in tags, desired, and reported properties can have a maximum depth of 10." */
  depth: 10,
  /** Section sizes, counted without read-only metadata. */
  sectionBytes: { tags: 8 * 1024, desired: 32 * 1024, reported: 32 * 1024 },
  maxInteger: 4503599627370495,
  minInteger: -4503599627370496,
} as const;

type SectionName = "tags" | "desired" | "reported";

// C0 and C1 control characters, '.', '$' and space are not allowed in keys.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const BAD_KEY = /[\u0000-\u001f\u007f-\u009f.$ ]/;

/**
 * "__proto__" is the one name the twin code refuses beyond IoT Hub's rules ("Understand device twins > Tags and
 * properties format": keys are "up to 1 KB", without control characters, '.', '$' or SP, which admits it).
 * JavaScript gives that name a meaning of its own (the object's prototype), so a patch using it is refused as an
 * invalid property name, at the root, for every protocol. This is a deliberate, documented divergence: no real
 * twin is expected to use it, and refusing it keeps hostile patches away from every later step. "constructor" and
 * "prototype" are ordinary names in JSON and IoT Hub accepts them, so they are stored like any other key: every
 * read and write below goes through own-property helpers, so no key can reach a prototype.
 */
const RESERVED_KEY = "__proto__";

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `o[key]` if `key` is an own property of `o`, else undefined: never an inherited value. */
export function getOwn(o: Record<string, unknown>, key: string): unknown {
  if (!Object.hasOwn(o, key)) return undefined;
  // o["__proto__"] would read the accessor on Object.prototype, not the own property JSON.parse made
  return key === RESERVED_KEY ? Object.getOwnPropertyDescriptor(o, key)?.value : o[key];
}

/** Sets an own, enumerable property even for a key that is special to JavaScript ("__proto__"). */
export function setOwn(o: Record<string, unknown>, key: string, value: unknown): void {
  if (key === RESERVED_KEY)
    Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
  else o[key] = value;
}

/** Validates a patch for one section; throws a 400 HubError naming the offending path. */
export function validatePatch(
  section: SectionName,
  patch: unknown,
): asserts patch is Record<string, unknown> {
  if (!isPlainObject(patch)) throw errors.badRequest(`${section} must be a JSON object`);
  walk(patch, section, 1);

  function walk(obj: Record<string, unknown>, path: string, depth: number): void {
    if (depth > LIMITS.depth) throw errors.badRequest(`${path} is nested deeper than ${LIMITS.depth} levels`);
    for (const key of Object.keys(obj)) {
      const value = getOwn(obj, key);
      const at = `${path}.${key}`;
      if (key.length === 0 || BAD_KEY.test(key)) {
        throw errors.badRequest(
          `Invalid property name ${JSON.stringify(key)} at ${path}: names cannot be empty or contain '.', '$', spaces or control characters`,
        );
      }
      if (key === RESERVED_KEY) {
        throw errors.badRequest(
          `Invalid property name "__proto__" at ${path}: local-hub refuses this name (it is special to JavaScript)`,
        );
      }
      if (Buffer.byteLength(key) > LIMITS.keyBytes)
        throw errors.badRequest(`A property name at ${path} is longer than 1 KB`);
      checkValue(value, at, depth);
    }
  }

  function checkValue(value: unknown, at: string, depth: number): void {
    if (value === null || typeof value === "boolean") return;
    if (typeof value === "number") {
      if (!Number.isFinite(value)) throw errors.badRequest(`${at} is not a finite number`);
      if (Number.isInteger(value) && (value > LIMITS.maxInteger || value < LIMITS.minInteger)) {
        throw errors.badRequest(`${at} is outside the integer range IoT Hub supports (±4503599627370495)`);
      }
      return;
    }
    if (typeof value === "string") {
      if (Buffer.byteLength(value) > LIMITS.stringBytes)
        throw errors.badRequest(`${at} is a string longer than 4 KB`);
      return;
    }
    if (Array.isArray(value)) {
      // Arrays count as a level ("All JSON objects in tags, desired, and reported properties can have a maximum
      // depth of 10"): an array's items sit one level below it, so arrays nested in arrays cannot hide depth.
      // The check comes before the recursion, which is therefore bounded by the limit whatever the input.
      if (depth + 1 > LIMITS.depth)
        throw errors.badRequest(`${at} is nested deeper than ${LIMITS.depth} levels`);
      for (const [i, item] of value.entries()) {
        if (item === null) throw errors.badRequest(`${at}[${i}] is null: arrays cannot hold null`);
        if (isPlainObject(item)) walk(item, `${at}[${i}]`, depth + 1);
        else checkValue(item, `${at}[${i}]`, depth + 1);
      }
      return;
    }
    if (isPlainObject(value)) {
      walk(value, at, depth + 1);
      return;
    }
    throw errors.badRequest(`${at} has an unsupported value type`);
  }
}

/** Applies a JSON merge patch to `props` and its metadata tree in place. */
function mergeInto(
  props: Record<string, unknown>,
  meta: Record<string, unknown>,
  patch: Record<string, unknown>,
  stamp: MetaStamp,
): void {
  // Own-property reads and writes only (getOwn/setOwn): a key can never reach or replace a prototype.
  for (const key of Object.keys(patch)) {
    const value = getOwn(patch, key);
    if (value === null) {
      if (Object.hasOwn(props, key)) delete props[key];
      if (Object.hasOwn(meta, key)) delete meta[key];
      continue;
    }
    const current = getOwn(props, key);
    if (isPlainObject(value) && isPlainObject(current)) {
      const oldMeta = getOwn(meta, key);
      const childMeta = isPlainObject(oldMeta) ? oldMeta : {};
      Object.assign(childMeta, stamp.node());
      setOwn(meta, key, childMeta);
      mergeInto(current, childMeta, value, stamp);
    } else {
      const fresh = stripNulls(value);
      setOwn(props, key, fresh);
      setOwn(meta, key, metaFor(fresh, stamp));
    }
  }
}

/** Merge-patch semantics: nulls inside a newly added object mean "absent". */
function stripNulls(value: unknown): unknown {
  if (!isPlainObject(value)) return cloneJson(value);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value)) {
    const v = getOwn(value, k);
    if (v !== null) setOwn(out, k, stripNulls(v));
  }
  return out;
}

function metaFor(value: unknown, stamp: MetaStamp): Record<string, unknown> {
  const node = stamp.node();
  if (isPlainObject(value))
    for (const k of Object.keys(value)) setOwn(node, k, metaFor(getOwn(value, k), stamp));
  return node;
}

/**
 * The merge patch that turns `before` into `after` for a device that merges patches (as the device SDKs do):
 * `after`'s values, plus an explicit `null` for every key `before` has and `after` lacks, at any depth. This is
 * what a device receives when the service replaces desired properties (PUT /twins) or clears them
 * (`"desired": null`): "the device app receives ... the patch", and a removed property arrives as null
 * ("Understand device twins > Device operations: ... desired property update notifications ... null means delete").
 */
export function diffPatch(
  before: Record<string, unknown>,
  after: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(before)) if (!Object.hasOwn(after, k)) setOwn(out, k, null);
  for (const k of Object.keys(after)) {
    const a = getOwn(after, k);
    const b = getOwn(before, k);
    setOwn(out, k, isPlainObject(a) && isPlainObject(b) ? diffPatch(b, a) : cloneJson(a));
  }
  return out;
}

class MetaStamp {
  constructor(
    readonly time: string,
    readonly version: number | undefined,
  ) {}
  node(): Record<string, unknown> {
    return this.version === undefined
      ? { $lastUpdated: this.time }
      : { $lastUpdated: this.time, $lastUpdatedVersion: this.version };
  }
}

/** Throws unless `json`, a section's properties as JSON text, is within the section's limit. */
function checkSize(name: SectionName, json: string): void {
  const limit = LIMITS.sectionBytes[name];
  const size = Buffer.byteLength(json);
  if (size > limit) {
    throw errors.badRequest(
      `The ${name} section would be ${size} bytes, over IoT Hub's limit of ${limit / 1024} KB; nothing was written`,
    );
  }
}

/**
 * A deep copy of a JSON value (what twins hold: objects, arrays, strings, numbers, booleans, null); much
 * cheaper than structuredClone for the small trees twins are made of.
 */
function cloneJson<T>(value: T): T {
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) return value.map(cloneJson) as T;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    // A key named "__proto__" (JSON.parse makes it an ordinary property) must stay one, as structuredClone keeps it.
    setOwn(out, key, cloneJson(getOwn(value as Record<string, unknown>, key)));
  }
  return out as T;
}

export function emptyTwin(now: string): TwinState {
  return {
    version: 1,
    tags: {},
    desired: { version: 1, props: {}, meta: { $lastUpdated: now, $lastUpdatedVersion: 1 } },
    reported: { version: 1, props: {}, meta: { $lastUpdated: now } },
  };
}

export interface TwinChange {
  tags?: Record<string, unknown>;
  desired?: Record<string, unknown>;
  reported?: Record<string, unknown>;
  /** Replace tags/desired wholly (PUT /twins) instead of merging. */
  replace?: boolean;
  /**
   * Sections to empty before their patch applies: a service patch `"tags": null` or `"desired": null` removes
   * every property of that section (JSON merge patch, RFC 7386: a null member removes the target member).
   */
  clear?: ReadonlyArray<"tags" | "desired">;
}

/**
 * The JSON text of the tags and properties of each section a change set, as its size check made them, for the
 * store to reuse: a reported patch's properties are then serialised once. Kept only until the change is written
 * (keeping it with the twin would double the memory of every twin's properties).
 */
export interface SectionTexts {
  tags?: string;
  desired?: string;
  reported?: string;
}

/**
 * Computes the twin after a change without touching the original: either the whole change applies or,
 * on any validation or size error, none of it (the caller stores the returned state only on success).
 * Twin states are never changed in place, so the sections a change does not touch are shared with the
 * original; only the ones it changes are copied. `texts`, when given, receives the JSON text of what changed.
 */
export function applyChange(
  twin: TwinState,
  change: TwinChange,
  now: string,
  texts?: SectionTexts,
): TwinState {
  const next: TwinState = { ...twin };
  let changed = false;
  if (change.tags !== undefined) {
    validatePatch("tags", change.tags);
    const fresh = change.replace || change.clear?.includes("tags");
    next.tags = fresh ? (stripNulls(change.tags) as Record<string, unknown>) : cloneJson(twin.tags);
    if (!fresh) mergeInto(next.tags, {}, change.tags, new MetaStamp(now, undefined));
    const json = JSON.stringify(next.tags);
    checkSize("tags", json);
    if (texts) texts.tags = json;
    changed = true;
  }
  for (const name of ["desired", "reported"] as const) {
    const patch = change[name];
    if (patch === undefined) continue;
    validatePatch(name, patch);
    const old = twin[name];
    const fresh = change.replace || (name === "desired" && change.clear?.includes("desired"));
    const section: SectionState = fresh
      ? { version: old.version + 1, props: {}, meta: {} }
      : { version: old.version + 1, props: cloneJson(old.props), meta: cloneJson(old.meta) };
    next[name] = section;
    const stamp = new MetaStamp(now, name === "desired" ? section.version : undefined);
    Object.assign(section.meta, stamp.node());
    mergeInto(section.props, section.meta, patch, stamp);
    const json = JSON.stringify(section.props);
    checkSize(name, json);
    if (texts) texts[name] = json;
    changed = true;
  }
  if (changed) next.version += 1;
  return next;
}

/**
 * A section as the store keeps it: `{"version":N,"props":{...},"meta":{...}}`. `props`, when given, is the
 * properties' JSON text already made (by applyChange's size check, see SectionTexts), so that a patch's properties
 * are serialised once.
 */
export function sectionJson(s: SectionState, props = JSON.stringify(s.props)): string {
  return `{"version":${s.version},"props":${props},"meta":${JSON.stringify(s.meta)}}`;
}

/** IoT Hub's twin etags look like base64 of an 8-byte counter ("AAAAAAAAAAE="). */
export function twinEtag(version: number): string {
  if (version < ETAG_CACHE_SIZE) {
    etagCache[version] ??= encodeEtag(version);
    return etagCache[version];
  }
  return encodeEtag(version);
}

// Every rendered twin needs its etag and most versions are small: encode each of those once.
const ETAG_CACHE_SIZE = 1 << 16;
const etagCache: string[] = [];

function encodeEtag(version: number): string {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(version));
  return b.toString("base64");
}

function renderSection(s: SectionState): TwinSection {
  // Object.assign and two assignments: several times faster in V8 than `{ ...props, $metadata, $version }`
  // (what makes rendering on every query scan affordable). Same keys in the same order; a "__proto__" key
  // would be a prototype for Object.assign, so that (theoretical) case keeps the spread.
  const out: Record<string, unknown> = Object.hasOwn(s.props, "__proto__")
    ? { ...s.props }
    : Object.assign({}, s.props);
  out.$metadata = s.meta;
  out.$version = s.version;
  return out as TwinSection;
}

const NO_THUMBPRINT = Object.freeze({ primaryThumbprint: null, secondaryThumbprint: null });
const NO_SCOPES: readonly string[] = Object.freeze([]);
const EDGE = Object.freeze({ iotEdge: true });
const NOT_EDGE = Object.freeze({ iotEdge: false });

/**
 * The twin document as `GET /twins/{id}` returns it (and as queries see it). Twin states are never changed in
 * place (see applyChange), so the document shares their property trees instead of copying them, which makes
 * it cheap enough (about 0.3 µs) to render on every read rather than keep a second copy of every twin.
 * Treat it as read-only.
 */
export function renderTwin(r: DeviceRecord, cloudToDeviceMessageCount = 0): TwinDocument {
  return {
    deviceId: r.deviceId,
    etag: twinEtag(r.twin.version),
    deviceEtag: r.etag,
    status: r.status,
    statusUpdateTime: r.statusUpdatedTime,
    connectionState: r.connectionState,
    lastActivityTime: r.lastActivityTime,
    cloudToDeviceMessageCount,
    authenticationType: r.authType ?? "sas",
    x509Thumbprint:
      r.primaryThumbprint || r.secondaryThumbprint
        ? {
            primaryThumbprint: r.primaryThumbprint ?? null,
            secondaryThumbprint: r.secondaryThumbprint ?? null,
          }
        : NO_THUMBPRINT,
    modelId: "",
    version: r.twin.version,
    tags: r.twin.tags,
    properties: { desired: renderSection(r.twin.desired), reported: renderSection(r.twin.reported) },
    capabilities: r.iotEdge ? EDGE : NOT_EDGE,
    // always present (undefined when none: JSON leaves it out) so every twin document has one shape
    deviceScope: r.deviceScope ?? undefined,
    parentScopes: r.parentScopes ?? NO_SCOPES,
  };
}

/** The twin as a device sees it over MQTT: `{ desired, reported }` with their `$version`s. */
export function renderDeviceTwin(r: DeviceRecord) {
  // Devices get no $metadata over MQTT, only the properties and each section's $version.
  const section = (s: SectionState) => ({ ...s.props, $version: s.version });
  return { desired: section(r.twin.desired), reported: section(r.twin.reported) };
}
