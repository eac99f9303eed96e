import { setTimeout as sleep } from "node:timers/promises";
import { RetriesExhaustedError, withTimeout } from "../sdk/errors.js";
import type { Registry } from "../sdk/index.js";

/**
 * The tutorial's back-end app (AddTagsAndQuery): registry statistics, a tag and desired-property update of one
 * twin with optimistic concurrency, and two server-side queries followed to their last page.
 */

export interface RegistryStatistics {
  totalDeviceCount: number;
  enabledDeviceCount: number;
  disabledDeviceCount: number;
}

export interface AddTagsAndQueryOptions {
  deviceId: string;
  plant: string;
  region: string;
  connectivity: string;
  /** `x-ms-max-item-count` per query page; the hub's default when undefined. */
  pageSize?: number;
  /** False with `--no-update`: only query. */
  update: boolean;
  /** Poll the queries for up to this many seconds until they show the version just written (0: no polling). */
  waitSeconds: number;
  /** Bound for each call to the hub. */
  timeoutSeconds: number;
  /** Progress lines for `--verbose`. */
  log?: (line: string) => void;
}

export interface AddTagsAndQueryResult {
  statistics: RegistryStatistics;
  updated?: { deviceId: string; version: number; etag: string; attempts: number };
  plant: string;
  connectivity: string;
  inPlant: string[];
  inPlantCellular: string[];
  queries: { inPlant: string; inPlantCellular: string };
  pages: { inPlant: number; inPlantCellular: number };
  /**
   * Whether the query results show the twin version just written: IoT Hub queries are eventually consistent.
   * Undefined when nothing was written (`--no-update`).
   */
  consistent: boolean | undefined;
  /** Seconds spent polling with `--wait`. */
  waitedSeconds: number;
}

/** Maximum attempts of the read-modify-write cycle when the twin's etag keeps changing (412). */
export const MAX_UPDATE_ATTEMPTS = 5;

/** The two queries of the tutorial. The CLI validates the values; quotes are refused here as well. */
export function buildQueries(
  plant: string,
  connectivity: string,
): { inPlant: string; inPlantCellular: string } {
  const literal = (value: string) => {
    if (/['\\]/.test(value)) throw new Error("Query values cannot contain quotes or backslashes.");
    return `'${value}'`;
  };
  const inPlant = `SELECT * FROM devices WHERE tags.location.plant = ${literal(plant)}`;
  // The reported property as the Node and .NET device apps write it ({ connectivity: { type } }), and the flat
  // form the original Python device sample reports ({ connectivity: "cellular" }).
  const inPlantCellular =
    `${inPlant} AND (properties.reported.connectivity.type = ${literal(connectivity)}` +
    ` OR properties.reported.connectivity = ${literal(connectivity)})`;
  return { inPlant, inPlantCellular };
}

interface TwinRow {
  deviceId?: unknown;
  version?: unknown;
}

/** Runs a query and follows its continuation tokens to the last page. */
export async function queryAll(
  registry: Registry,
  sql: string,
  pageSize: number | undefined,
  timeoutSeconds: number,
): Promise<{ rows: TwinRow[]; pages: number }> {
  const query = registry.createQuery(sql, pageSize);
  const rows: TwinRow[] = [];
  let pages = 0;
  do {
    // Pass the token explicitly: the SDK's promise-style next() without arguments ignores the continuation
    // token it stored and starts the query over, forever (nextAsTwin() does not have that problem).
    const page = await withTimeout(query.next(query.continuationToken), timeoutSeconds, "A query");
    pages++;
    const result: unknown = page.result;
    if (Array.isArray(result)) rows.push(...(result as TwinRow[]));
    if (pages > 10_000) throw new Error("The query returned more than 10,000 pages; giving up.");
  } while (query.hasMoreResults);
  return { rows, pages };
}

function deviceIds(rows: TwinRow[]): string[] {
  return rows.map((row) => row.deviceId).filter((id): id is string => typeof id === "string");
}

/**
 * Writes `tags.location = { region, plant }` and the desired property `location = plant` with the twin's
 * etag; on 412 (someone else changed the twin in between) it reads the twin again and retries.
 */
export async function updateLocation(
  registry: Registry,
  options: Pick<AddTagsAndQueryOptions, "deviceId" | "plant" | "region" | "timeoutSeconds" | "log">,
): Promise<{ version: number; etag: string; attempts: number }> {
  const { deviceId, plant, region, timeoutSeconds } = options;
  const patch = { tags: { location: { region, plant } }, properties: { desired: { location: plant } } };
  for (let attempt = 1; ; attempt++) {
    const { responseBody: current } = await withTimeout(
      registry.getTwin(deviceId),
      timeoutSeconds,
      "Reading the twin",
    );
    const etag = (current as unknown as { etag?: string }).etag ?? "*";
    try {
      const { responseBody: updated } = await withTimeout(
        registry.updateTwin(deviceId, patch, etag),
        timeoutSeconds,
        "Updating the twin",
      );
      const twin = updated as unknown as { version?: number; etag?: string };
      return { version: twin.version ?? Number.NaN, etag: twin.etag ?? "", attempts: attempt };
    } catch (error) {
      const name = (error as { name?: string }).name;
      if (name !== "InvalidEtagError") throw error;
      if (attempt >= MAX_UPDATE_ATTEMPTS) {
        throw new RetriesExhaustedError(
          `The twin of ${deviceId} changed during each of ${MAX_UPDATE_ATTEMPTS} update attempts (HTTP 412)`,
        );
      }
      options.log?.(
        `The twin of ${deviceId} changed since it was read (412); reading it again (attempt ${attempt + 1}).`,
      );
      await sleep(50 * attempt);
    }
  }
}

/** Whether the rows show `deviceId` at `version` or later (rows without a version cannot tell: assumed yes). */
function showsVersion(rows: TwinRow[], deviceId: string, version: number): boolean {
  const row = rows.find((r) => r.deviceId === deviceId);
  if (!row) return false;
  return typeof row.version !== "number" || Number.isNaN(version) || row.version >= version;
}

export async function addTagsAndQuery(
  registry: Registry,
  options: AddTagsAndQueryOptions,
): Promise<AddTagsAndQueryResult> {
  const { deviceId, plant, connectivity, pageSize, timeoutSeconds, log } = options;
  const { responseBody: stats } = await withTimeout(
    registry.getRegistryStatistics(),
    timeoutSeconds,
    "Reading registry statistics",
  );
  const statistics: RegistryStatistics = {
    totalDeviceCount: stats.totalDeviceCount,
    enabledDeviceCount: stats.enabledDeviceCount,
    disabledDeviceCount: stats.disabledDeviceCount,
  };

  let updated: AddTagsAndQueryResult["updated"];
  if (options.update) {
    const result = await updateLocation(registry, options);
    updated = { deviceId, ...result };
    log?.(`Updated the twin of ${deviceId} to version ${result.version} in ${result.attempts} attempt(s).`);
  }

  const queries = buildQueries(plant, connectivity);
  const started = Date.now();
  const deadline = started + options.waitSeconds * 1000;
  for (;;) {
    log?.(`Query: ${queries.inPlant}${pageSize ? ` (page size ${pageSize})` : ""}`);
    const plantResult = await queryAll(registry, queries.inPlant, pageSize, timeoutSeconds);
    log?.(`Query: ${queries.inPlantCellular}`);
    const cellularResult = await queryAll(registry, queries.inPlantCellular, pageSize, timeoutSeconds);

    let consistent: boolean | undefined;
    if (updated) {
      const inCellular = cellularResult.rows.filter((r) => r.deviceId === deviceId);
      consistent =
        showsVersion(plantResult.rows, deviceId, updated.version) &&
        (inCellular.length === 0 || showsVersion(inCellular, deviceId, updated.version));
    }
    const waitedSeconds = Math.round((Date.now() - started) / 100) / 10;
    if (consistent !== false || Date.now() >= deadline) {
      return {
        statistics,
        updated,
        plant,
        connectivity,
        inPlant: deviceIds(plantResult.rows),
        inPlantCellular: deviceIds(cellularResult.rows),
        queries,
        pages: { inPlant: plantResult.pages, inPlantCellular: cellularResult.pages },
        consistent,
        waitedSeconds,
      };
    }
    log?.("The query results do not show the update yet; polling again.");
    await sleep(Math.min(1000, Math.max(0, deadline - Date.now())));
  }
}
