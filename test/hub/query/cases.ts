/**
 * Query cases over FIXTURE (fixture.ts), expected results derived by hand from the docs' rules:
 * "IoT Hub query language" (QL) and "Queries for IoT Hub device and module twins" (QT).
 * Exported for reuse by end-to-end tests that run them through the SDK against the local hub.
 */

export interface QueryCase {
  /** where the query text comes from: "QT" / "QL" (copied from the docs) or "rule" (written for a rule) */
  source: "QT" | "QL" | "rule";
  query: string;
  /** SELECT * queries: deviceIds of the matching twins, in ascending order */
  ids?: string[];
  /** projection and aggregate queries: the expected rows */
  rows?: unknown[];
  /** rows may come in any order (GROUP BY) */
  anyOrder?: boolean;
}

export interface ErrorCase {
  source: "QT" | "QL" | "rule";
  query: string;
  /** the QueryError message must match */
  message: RegExp;
}

/** d(1, 2) -> ["dev01", "dev02"] */
const d = (...n: number[]) => n.map((i) => `dev${String(i).padStart(2, "0")}`);
const ALL = d(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);

export const CASES: QueryCase[] = [
  // ---- Every query printed in the docs (QT = twin queries page, QL = query language page) ----
  { source: "QT", query: "SELECT * FROM devices", ids: ALL },
  {
    source: "QT",
    query: "SELECT COUNT() as totalNumberOfDevices FROM devices",
    rows: [{ totalNumberOfDevices: 16 }],
  },
  // dev08 spells it Location.Region: property names are case-insensitive
  {
    source: "QT",
    query: "SELECT * FROM devices\nWHERE tags.location.region = 'US'",
    ids: d(1, 2, 3, 8, 9, 13, 16),
  },
  {
    source: "QT",
    query:
      "SELECT * FROM devices\n  WHERE tags.location.region = 'US'\n    AND properties.reported.telemetryConfig.sendFrequencyInSecs >= 60",
    ids: d(1, 3, 8),
  },
  // 'Wired' (dev08) differs in case: values compare exactly; objects (dev01, dev16) never compare
  {
    source: "QT",
    query: "SELECT * FROM devices\n  WHERE properties.reported.connectivity IN ['wired', 'wifi']",
    ids: d(2, 3, 4, 9),
  },
  // defined "including null" (dev07)
  {
    source: "QT",
    query: "SELECT * FROM devices\n  WHERE is_defined(properties.reported.connectivity)",
    ids: d(1, 2, 3, 4, 5, 7, 8, 9, 16),
  },
  {
    source: "QT",
    query:
      "SELECT properties.reported.telemetryConfig.status AS status,\n    COUNT() AS numberOfDevices\n  FROM devices\n  GROUP BY properties.reported.telemetryConfig.status",
    rows: [
      { status: "Success", numberOfDevices: 5 },
      { status: "Pending", numberOfDevices: 3 },
      { status: "Error", numberOfDevices: 2 },
      { status: "success", numberOfDevices: 1 },
      { numberOfDevices: 5 }, // twins without the property form one group; the undefined key is left out
    ],
    anyOrder: true,
  },
  {
    source: "QT",
    query:
      "SELECT DeviceId, LastActivityTime FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'",
    rows: [
      { deviceId: "dev01", lastActivityTime: "2021-05-07T00:50:38.0543092Z" },
      ...d(4, 6, 7, 9, 11, 12, 14, 16).map((deviceId) => ({
        deviceId,
        lastActivityTime: "0001-01-01T00:00:00Z",
      })),
    ],
  },
  {
    source: "QL",
    query: "SELECT LastActivityTime FROM devices WHERE status = 'enabled'",
    rows: [
      { lastActivityTime: "2021-05-07T00:50:38.0543092Z" },
      { lastActivityTime: "2024-02-01T10:00:00Z" },
      ...d(4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 16).map(() => ({ lastActivityTime: "0001-01-01T00:00:00Z" })),
    ],
  },
  // The SELECT clause examples of QL, completed with the required FROM clause
  { source: "QL", query: "SELECT * FROM devices", ids: ALL },
  {
    source: "QL",
    query: "SELECT DeviceID, LastActivityTime FROM devices WHERE deviceId IN ['dev01', 'dev02']",
    rows: [
      { deviceId: "dev01", lastActivityTime: "2021-05-07T00:50:38.0543092Z" },
      { deviceId: "dev02", lastActivityTime: "2024-02-01T10:00:00Z" },
    ],
  },
  { source: "QL", query: "SELECT COUNT() as TotalNumber FROM devices", rows: [{ TotalNumber: 16 }] },
  { source: "QL", query: "SELECT * FROM devices WHERE tags.[[group]].name = 'some_value'", ids: d(12) },
  // Older QL revision spells "property.reported": a valid query that no twin matches
  {
    source: "QL",
    query: "SELECT * FROM devices\nWHERE property.reported.connectivity IN ['wired', 'wifi']",
    ids: [],
  },
  { source: "QL", query: "SELECT * FROM devices\nWHERE is_defined(property.reported.connectivity)", ids: [] },
  // QT/QL limitation: "WHERE properties.desired.config = properties.reported.config is supported only if
  // those properties have primitive values" -- objects never compare
  {
    source: "QT",
    query:
      "SELECT * FROM devices WHERE properties.desired.telemetryConfig = properties.reported.telemetryConfig",
    ids: [],
  },
  {
    source: "QT",
    query:
      "SELECT * FROM devices WHERE properties.desired.telemetryConfig.sendFrequencyInSecs = properties.reported.telemetryConfig.sendFrequencyInSecs",
    ids: d(1, 13),
  },
  {
    source: "QT",
    query:
      "SELECT * FROM devices WHERE properties.desired.telemetryConfig.sendFrequency = properties.reported.telemetryConfig.sendFrequency",
    ids: d(14),
  },
  // Twin expressions of the routing query syntax page, without the routing-only $twin prefix
  {
    source: "QL",
    query: "SELECT * FROM devices WHERE properties.desired.telemetryConfig.sendFrequency = '5m'",
    ids: d(14),
  },
  { source: "QL", query: "SELECT * FROM devices WHERE tags.deploymentLocation.floor = 1", ids: d(15) },

  // ---- Comparisons: same-type primitives only ----
  { source: "rule", query: "SELECT * FROM devices WHERE tags.floor = 2", ids: d(2) },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.floor = '2'", ids: d(5) },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE properties.reported.telemetryConfig.sendFrequencyInSecs > 50",
    ids: d(1, 3, 4, 8, 15),
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE NOT (properties.reported.telemetryConfig.sendFrequencyInSecs > 50)",
    ids: d(2, 13),
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE properties.reported.telemetryConfig.sendFrequencyInSecs <= 60",
    ids: d(2, 3, 13, 15),
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE properties.reported.telemetryConfig.sendFrequencyInSecs < 45",
    ids: d(2),
  },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.location.region != 'US'", ids: d(4, 5) },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.location.region <> 'US'", ids: d(4, 5) },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.location.region = 'eu'", ids: d(5) },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.floor > '1'", ids: d(5) },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.location > 'A'", ids: [] },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.location = null", ids: d(7) },
  { source: "rule", query: "SELECT * FROM devices WHERE properties.reported.connectivity = null", ids: d(7) },
  { source: "rule", query: "SELECT * FROM devices WHERE null = null AND deviceId = 'dev01'", ids: d(1) },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.nothing = undefined", ids: [] },
  { source: "rule", query: "SELECT * FROM devices WHERE deviceId >= 'dev15'", ids: d(15, 16) },
  { source: "rule", query: "SELECT * FROM devices WHERE lastActivityTime > '2022'", ids: d(2) },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.critical < true", ids: d(10) },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.critical = false", ids: d(10) },
  { source: "rule", query: "SELECT * FROM devices WHERE status = 'disabled'", ids: d(3, 10, 15) },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE connectionState = 'Connected'",
    ids: d(2, 5, 8, 13, 15),
  },
  { source: "rule", query: "SELECT * FROM devices WHERE version = 5", ids: d(16) },

  // ---- Case-insensitive keywords and property names ----
  { source: "rule", query: "SELECT * FROM devices WHERE STATUS = 'disabled'", ids: d(3, 10, 15) },
  {
    source: "rule",
    query: "select * from Devices where status = 'disabled' and connectionstate = 'Connected'",
    ids: d(15),
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE tags.Location.Region = 'US'",
    ids: d(1, 2, 3, 8, 9, 13, 16),
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE tags.LOCATION.PLANT = 'Redmond43'",
    ids: d(1, 3, 8, 13, 16),
  },
  // a collection-qualified path, as in the docs' devices.jobs.deviceId
  { source: "rule", query: "SELECT * FROM devices WHERE devices.tags.location.region = 'EU'", ids: d(4) },
  { source: "rule", query: "SELECT * FROM devices WHERE devices.deviceId = 'dev06'", ids: d(6) },
  // property names after '.' may be keywords (the docs recommend [[group]], which also works)
  { source: "rule", query: "SELECT * FROM devices WHERE tags.group.name = 'some_value'", ids: d(12) },

  // ---- Logic: only Boolean true passes WHERE; three-valued AND/OR/NOT ----
  { source: "rule", query: "SELECT * FROM devices WHERE true", ids: ALL },
  { source: "rule", query: "SELECT * FROM devices WHERE false", ids: [] },
  { source: "rule", query: "SELECT * FROM devices WHERE 1", ids: [] },
  { source: "rule", query: "SELECT * FROM devices WHERE 'true'", ids: [] },
  { source: "rule", query: "SELECT * FROM devices WHERE properties.reported.enabled", ids: d(9) },
  { source: "rule", query: "SELECT * FROM devices WHERE NOT properties.reported.enabled", ids: d(10) },
  { source: "rule", query: "SELECT * FROM devices WHERE properties.reported.enabled = true", ids: d(9) },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE tags.location.region = 'EU' OR tags.location.region = 'eu'",
    ids: d(4, 5),
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE (tags.floor = 1 OR tags.floor = 2) AND status = 'enabled'",
    ids: d(2, 4),
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE tags.floor = 1 OR tags.floor = 2 AND status = 'disabled'",
    ids: d(4),
  },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.floor = 1 OR tags.nothing = 1", ids: d(4) },
  { source: "rule", query: "SELECT * FROM devices WHERE NOT (tags.floor = 1 OR tags.nothing = 1)", ids: [] },
  { source: "rule", query: "SELECT * FROM devices WHERE NOT NOT (tags.floor = 3)", ids: d(3, 10) },

  // ---- IN / NIN ----
  { source: "rule", query: "SELECT * FROM devices WHERE tags.floor IN [1, 2, 3]", ids: d(2, 3, 4, 10) },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.floor NIN [1, 2, 3]", ids: d(5, 12) },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.floor NOT IN [1, 2, 3]", ids: d(5, 12) },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE deviceId IN ['dev01', 'dev16', 'nope']",
    ids: d(1, 16),
  },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.location IN [null]", ids: d(7) },
  { source: "rule", query: "SELECT * FROM devices WHERE deviceId IN []", ids: [] },

  // ---- Type functions ----
  { source: "rule", query: "SELECT * FROM devices WHERE IS_NULL(tags.location)", ids: d(7) },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE IS_DEFINED(tags.location) AND NOT IS_NULL(tags.location)",
    ids: d(1, 2, 3, 4, 5, 8, 9, 13, 16),
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE NOT IS_DEFINED(tags.location)",
    ids: d(6, 10, 11, 12, 14, 15),
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE IS_OBJECT(properties.reported.connectivity)",
    ids: d(1, 16),
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE IS_STRING(properties.reported.connectivity)",
    ids: d(2, 3, 4, 5, 8, 9),
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE IS_BOOL(properties.reported.enabled)",
    ids: d(9, 10),
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE IS_NUMBER(properties.reported.temperature)",
    ids: d(9, 10, 12, 16),
  },
  { source: "rule", query: "SELECT * FROM devices WHERE IS_PRIMITIVE(tags.location)", ids: d(7) },
  { source: "rule", query: "SELECT * FROM devices WHERE IS_ARRAY(tags)", ids: [] },
  { source: "rule", query: "SELECT * FROM devices WHERE IS_DEFINED(undefined)", ids: [] },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE AS_NUMBER(properties.reported.temperature) = 25",
    ids: d(11),
  },
  { source: "rule", query: "SELECT * FROM devices WHERE AS_NUMBER(tags.floor) = 2", ids: d(2, 5) },

  // ---- Math and string functions ----
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE startswith(deviceId, 'dev1')",
    ids: d(10, 11, 12, 13, 14, 15, 16),
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'dev0')",
    ids: d(1, 2, 3, 4, 5, 6, 7, 8, 9),
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE ENDSWITH(tags.location.plant, '43')",
    ids: d(1, 3, 8, 13, 16),
  },
  { source: "rule", query: "SELECT * FROM devices WHERE CONTAINS(tags.note, 'hi')", ids: d(11) },
  { source: "rule", query: "SELECT * FROM devices WHERE LOWER(tags.location.region) = 'eu'", ids: d(4, 5) },
  { source: "rule", query: "SELECT * FROM devices WHERE UPPER(tags.location.region) = 'EU'", ids: d(4, 5) },
  { source: "rule", query: "SELECT * FROM devices WHERE LENGTH(tags.name) = 7", ids: d(11) },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE SUBSTRING(tags.location.plant, 0, 7) = 'Redmond'",
    ids: d(1, 2, 3, 8, 13, 16),
  },
  { source: "rule", query: "SELECT * FROM devices WHERE SUBSTRING(deviceId, 3) = '07'", ids: d(7) },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE INDEX_OF(tags.location.plant, 'mond') = 3",
    ids: d(1, 2, 3, 8, 13, 16),
  },
  {
    source: "rule",
    query:
      "SELECT * FROM devices WHERE CONCAT(tags.location.region, '-', tags.location.plant) = 'US-Redmond44'",
    ids: d(2),
  },
  { source: "rule", query: "SELECT * FROM devices WHERE ABS(tags.rank) = 1", ids: d(10) },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE CEILING(tags.weight) = 3 AND FLOOR(tags.weight) = 2",
    ids: d(10),
  },
  { source: "rule", query: "SELECT * FROM devices WHERE POWER(tags.floor, 2) = 9", ids: d(3, 10) },
  { source: "rule", query: "SELECT * FROM devices WHERE SQUARE(tags.floor) = 4", ids: d(2) },
  { source: "rule", query: "SELECT * FROM devices WHERE SQRT(properties.reported.humidity) = 4", ids: d(10) },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE SIGN(properties.reported.temperature) = -1",
    ids: d(12),
  },
  { source: "rule", query: "SELECT * FROM devices WHERE EXP(0) = 1 AND deviceId = 'dev01'", ids: d(1) },

  // ---- Arithmetic and number literals ----
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE properties.reported.temperature * 2 > 50",
    ids: d(10),
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE properties.reported.temperature + 10 = 10",
    ids: d(16),
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE properties.reported.temperature - 1 < 0",
    ids: d(12, 16),
  },
  { source: "rule", query: "SELECT * FROM devices WHERE properties.reported.humidity % 5 = 1", ids: d(10) },
  { source: "rule", query: "SELECT * FROM devices WHERE properties.reported.humidity / 4 = 4", ids: d(10) },
  { source: "rule", query: "SELECT * FROM devices WHERE -properties.reported.temperature = 5", ids: d(12) },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.floor + 2 * 3 = 9", ids: d(3, 10) },
  { source: "rule", query: "SELECT * FROM devices WHERE (tags.floor + 2) * 3 = 9", ids: d(4) },
  { source: "rule", query: "SELECT * FROM devices WHERE properties.reported.temperature / 0 = 1", ids: [] },
  { source: "rule", query: "SELECT * FROM devices WHERE properties.reported.humidity = 0x10", ids: d(10) },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE tags.weight = 2.5 AND tags.weight > 2.49",
    ids: d(10),
  },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.rank = -1", ids: d(10) },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE properties.reported.batteryLevel = 5.5e1",
    ids: d(14),
  },

  // ---- String literals: single or double quotes, escapes \' \" \\ \uXXXX ----
  { source: "rule", query: "SELECT * FROM devices WHERE tags.name = 'O\\'Brien'", ids: d(11) },
  { source: "rule", query: `SELECT * FROM devices WHERE tags.name = "O'Brien"`, ids: d(11) },
  { source: "rule", query: `SELECT * FROM devices WHERE tags.note = "say \\"hi\\""`, ids: d(11) },
  { source: "rule", query: `SELECT * FROM devices WHERE tags.note = 'say "hi"'`, ids: d(11) },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.city = 'Z\\u00fcrich'", ids: d(11) },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.empty = ''", ids: d(11) },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.name = 'O\\\\Brien'", ids: [] },

  // ---- $metadata and $version ----
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE properties.reported.$metadata.$lastUpdated >= '2024-01-14'",
    ids: d(14, 15, 16),
  },
  { source: "rule", query: "SELECT * FROM devices WHERE properties.reported.$version > 1", ids: d(1) },
  {
    source: "rule",
    query:
      "SELECT * FROM devices WHERE properties.desired.$metadata.telemetryConfig.$lastUpdated = '2024-01-13T00:00:00Z'",
    ids: d(13),
  },

  // ---- TOP ----
  { source: "rule", query: "SELECT TOP 3 * FROM devices WHERE tags.location.region = 'US'", ids: d(1, 2, 3) },
  { source: "rule", query: "SELECT TOP 0 * FROM devices", ids: [] },
  { source: "rule", query: "SELECT TOP 100 * FROM devices WHERE status = 'disabled'", ids: d(3, 10, 15) },
  {
    source: "rule",
    query: "SELECT TOP 2 deviceId FROM devices",
    rows: [{ deviceId: "dev01" }, { deviceId: "dev02" }],
  },

  // ---- Projections: named after the property (twin's spelling) or the alias; missing values left out ----
  {
    source: "rule",
    query: "SELECT deviceId, tags.location.region FROM devices WHERE tags.floor = 3",
    rows: [{ deviceId: "dev03", region: "US" }, { deviceId: "dev10" }],
  },
  {
    source: "rule",
    query:
      "SELECT deviceId, properties.reported.telemetryConfig.sendFrequencyInSecs AS freq FROM devices WHERE STARTSWITH(deviceId, 'dev0')",
    rows: [
      { deviceId: "dev01", freq: 300 },
      { deviceId: "dev02", freq: 30 },
      { deviceId: "dev03", freq: 60 },
      { deviceId: "dev04", freq: 120 },
      { deviceId: "dev05", freq: "60" },
      { deviceId: "dev06" },
      { deviceId: "dev07", freq: null },
      { deviceId: "dev08", freq: 600 },
      { deviceId: "dev09" },
    ],
  },
  {
    source: "rule",
    query: "SELECT tags.location.region FROM devices WHERE deviceId = 'dev08'",
    rows: [{ Region: "US" }],
  },
  {
    source: "rule",
    query: "SELECT tags.location FROM devices WHERE deviceId = 'dev16'",
    rows: [{ location: { region: "US", plant: "Redmond43", zone: { id: 7 } } }],
  },
  {
    source: "rule",
    query:
      "SELECT deviceId, properties.reported.temperature * 2 AS double FROM devices WHERE IS_NUMBER(properties.reported.temperature)",
    rows: [
      { deviceId: "dev09", double: 43 },
      { deviceId: "dev10", double: 60 },
      { deviceId: "dev12", double: -10 },
      { deviceId: "dev16", double: 0 },
    ],
  },
  {
    source: "rule",
    query: "SELECT deviceId, UPPER(deviceId) FROM devices WHERE deviceId = 'dev01'",
    rows: [{ deviceId: "dev01", $1: "DEV01" }],
  },
  {
    source: "rule",
    query: "SELECT 'x' AS k, [1, 2] AS list FROM devices WHERE deviceId = 'dev01'",
    rows: [{ k: "x", list: [1, 2] }],
  },
  { source: "rule", query: "SELECT tags.nothing FROM devices WHERE deviceId = 'dev06'", rows: [{}] },
  {
    source: "rule",
    query: "SELECT tags.location.zone.id AS zone FROM devices WHERE IS_DEFINED(tags.location.zone)",
    rows: [{ zone: 7 }],
  },

  // ---- Aggregates ----
  { source: "rule", query: "SELECT COUNT() FROM devices", rows: [{ $1: 16 }] },
  { source: "rule", query: "SELECT COUNT() AS n FROM devices WHERE status = 'disabled'", rows: [{ n: 3 }] },
  { source: "rule", query: "SELECT COUNT() AS n FROM devices WHERE false", rows: [{ n: 0 }] },
  {
    source: "rule",
    query: "SELECT SUM(tags.floor) AS s, AVG(tags.floor) AS a FROM devices",
    rows: [{ s: 9, a: 1.8 }],
  },
  {
    source: "rule",
    query:
      "SELECT MIN(properties.reported.temperature) AS lo, MAX(properties.reported.temperature) AS hi FROM devices WHERE IS_NUMBER(properties.reported.temperature)",
    rows: [{ lo: -5, hi: 30 }],
  },
  { source: "rule", query: "SELECT AVG(tags.nothing) AS a, COUNT() AS n FROM devices", rows: [{ n: 16 }] },
  { source: "rule", query: "SELECT COUNT() * 2 AS twice FROM devices", rows: [{ twice: 32 }] },
  {
    source: "rule",
    query: "SELECT connectionState, COUNT() AS n FROM devices GROUP BY connectionState",
    rows: [
      { connectionState: "Disconnected", n: 11 },
      { connectionState: "Connected", n: 5 },
    ],
    anyOrder: true,
  },
  {
    source: "rule",
    query: "SELECT status, connectionState, COUNT() AS n FROM devices GROUP BY status, connectionState",
    rows: [
      { status: "enabled", connectionState: "Disconnected", n: 9 },
      { status: "enabled", connectionState: "Connected", n: 4 },
      { status: "disabled", connectionState: "Disconnected", n: 2 },
      { status: "disabled", connectionState: "Connected", n: 1 },
    ],
    anyOrder: true,
  },
  {
    source: "rule",
    query:
      "SELECT tags.location.region AS region, COUNT() AS n FROM devices WHERE IS_DEFINED(tags.location.region) GROUP BY tags.location.region",
    rows: [
      { region: "US", n: 7 },
      { region: "EU", n: 1 },
      { region: "eu", n: 1 },
    ],
    anyOrder: true,
  },
  {
    source: "rule",
    query: "SELECT status FROM devices GROUP BY status",
    rows: [{ status: "enabled" }, { status: "disabled" }],
    anyOrder: true,
  },
  {
    source: "rule",
    query:
      "SELECT status, SUM(properties.reported.batteryLevel) AS battery FROM devices WHERE IS_DEFINED(properties.reported.batteryLevel) GROUP BY status",
    rows: [
      { status: "enabled", battery: 55 },
      { status: "disabled", battery: 80 },
    ],
    anyOrder: true,
  },
];

export const ERROR_CASES: ErrorCase[] = [
  // The SELECT clause fragments of QL lack the FROM clause, which "is required in every IoT Hub query"
  { source: "QL", query: "SELECT *", message: /column 9: expected FROM but found end of query/ },
  { source: "QL", query: "SELECT DeviceID, LastActivityTime", message: /column 34: expected ',' or FROM/ },
  { source: "QL", query: "SELECT COUNT() as TotalNumber", message: /expected ',' or FROM/ },
  // Module twin and job queries from the docs: not supported by this hub
  { source: "QT", query: "SELECT * FROM devices.modules", message: /devices\.modules is not supported/ },
  {
    source: "QT",
    query: "SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning'",
    message: /devices\.modules is not supported/,
  },
  {
    source: "QT",
    query:
      "SELECT * FROM devices.modules\n  WHERE properties.reported.status = 'scanning'\n  AND deviceId IN ['device1', 'device2']",
    message: /line 1, column 15: FROM devices\.modules is not supported/,
  },
  {
    source: "QL",
    query: "SELECT * FROM devices.jobs\n  WHERE devices.jobs.deviceId = 'myDeviceId'",
    message: /devices\.jobs is not supported/,
  },
  {
    source: "QL",
    query:
      "SELECT * FROM devices.jobs\n  WHERE devices.jobs.deviceId = 'myDeviceId'\n    AND devices.jobs.jobType = 'scheduleUpdateTwin'\n    AND devices.jobs.status = 'completed'\n    AND devices.jobs.createdTimeUtc > '2016-09-01'",
    message: /devices\.jobs is not supported/,
  },
  {
    source: "QL",
    query: "SELECT * FROM devices.jobs\n  WHERE devices.jobs.jobId = 'myJobId'",
    message: /devices\.jobs is not supported/,
  },
  { source: "rule", query: "SELECT * FROM twins", message: /unknown collection 'twins'; expected devices/ },
  // Syntax
  { source: "rule", query: "", message: /query is empty/ },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE",
    message: /column 28: expected an expression but found end of query/,
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE status = 'a' AND",
    message: /expected an expression/,
  },
  {
    source: "rule",
    query: "SELECT * FROM devices x",
    message: /column 23: expected WHERE, GROUP BY, end of query but found 'x'/,
  },
  { source: "rule", query: "SELECT * FROM devices ORDER BY deviceId", message: /ORDER BY is not supported/ },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE (status = 'a'",
    message: /expected '\)' but found end of query/,
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE status == 'a'",
    message: /column 37: expected an expression but found '='/,
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE a && b",
    message: /unexpected character "&"; use AND/,
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE x = 'abc",
    message: /column 33: unterminated string/,
  },
  { source: "rule", query: "SELECT * FROM devices WHERE x = 'a\\nb'", message: /invalid escape '\\n'/ },
  { source: "rule", query: "SELECT * FROM devices WHERE x = '\\u12'", message: /invalid \\u escape/ },
  { source: "rule", query: "SELECT * FROM devices WHERE x = 0x", message: /hexadecimal digits/ },
  { source: "rule", query: "SELECT * FROM devices WHERE x = 12abc", message: /invalid number '12a'/ },
  { source: "rule", query: "SELECT * FROM devices WHERE x IN 'a'", message: /expected an array constant/ },
  { source: "rule", query: "SELECT * FROM devices WHERE x IN [deviceId]", message: /expected a constant/ },
  { source: "rule", query: "SELECT TOP -1 * FROM devices", message: /non-negative integer after TOP/ },
  { source: "rule", query: "SELECT TOP 1.5 * FROM devices", message: /non-negative integer after TOP/ },
  { source: "rule", query: "SELECT *, deviceId FROM devices", message: /expected FROM but found ','/ },
  { source: "rule", query: "SELECT deviceId, * FROM devices", message: /'\*' cannot be combined/ },
  { source: "rule", query: "SELECT * FROM devices WHERE tags.[[]] = 1", message: /empty \[\[ \]\]/ },
  {
    source: "rule",
    query: `SELECT * FROM devices WHERE ${"(".repeat(200)}1${")".repeat(200)} = 1`,
    message: /nested too deeply/,
  },
  { source: "rule", query: `SELECT * FROM devices WHERE x = ${"1 + ".repeat(300)}1`, message: /too complex/ },
  {
    source: "rule",
    query: `SELECT * FROM devices WHERE deviceId = '${"x".repeat(8200)}'`,
    message: /at most 8192/,
  },
  // Functions and aggregates
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE FOO(deviceId)",
    message: /column 29: unknown function 'FOO'; expected one of/,
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE IS_DEFINED()",
    message: /IS_DEFINED\(\) takes 1 argument but was given 0/,
  },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE STARTSWITH(deviceId)",
    message: /takes 2 arguments but was given 1/,
  },
  { source: "rule", query: "SELECT COUNT(deviceId) FROM devices", message: /COUNT\(\) takes 0 arguments/ },
  {
    source: "rule",
    query: "SELECT * FROM devices WHERE COUNT() > 1",
    message: /aggregate COUNT\(\) is not allowed in WHERE/,
  },
  {
    source: "rule",
    query: "SELECT SUM(COUNT()) FROM devices",
    message: /cannot be nested inside another aggregate/,
  },
  {
    source: "rule",
    query: "SELECT deviceId, COUNT() FROM devices",
    message: /column 8: 'deviceId' is not grouped/,
  },
  {
    source: "rule",
    query: "SELECT deviceId FROM devices GROUP BY status",
    message: /'deviceId' is not grouped; add it to GROUP BY/,
  },
  {
    source: "rule",
    query: "SELECT * FROM devices GROUP BY status",
    message: /SELECT \* cannot be used with GROUP BY/,
  },
  {
    source: "rule",
    query: "SELECT status FROM devices GROUP BY UPPER(status)",
    message: /GROUP BY takes property paths/,
  },
  {
    source: "rule",
    query: "SELECT deviceId, DeviceId FROM devices",
    message: /'DeviceId' is produced twice/,
  },
  {
    source: "rule",
    query: "SELECT deviceId AS x, status AS X FROM devices",
    message: /'X' is produced twice/,
  },
];
