import type { TwinDocument, TwinSource } from "../../../src/hub/twin/types.js";

/** In-memory TwinSource over an array kept sorted by deviceId (what the hub's store provides). */
export class MemorySource implements TwinSource {
  private twins: TwinDocument[];
  constructor(twins: TwinDocument[] = []) {
    this.twins = [...twins].sort((a, b) => cmp(a.deviceId, b.deviceId));
  }
  get size(): number {
    return this.twins.length;
  }
  *scan(afterId?: string): Iterable<TwinDocument> {
    let i = 0;
    if (afterId !== undefined) {
      // binary search for the first id > afterId
      let lo = 0;
      let hi = this.twins.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cmp(this.twins[mid]!.deviceId, afterId) <= 0) lo = mid + 1;
        else hi = mid;
      }
      i = lo;
    }
    // Index-based so that puts/removes between pages (not during one scan) are seen
    for (; i < this.twins.length; i++) yield this.twins[i]!;
  }
  put(t: TwinDocument): void {
    this.remove(t.deviceId);
    const i = this.twins.findIndex((x) => cmp(x.deviceId, t.deviceId) > 0);
    if (i < 0) this.twins.push(t);
    else this.twins.splice(i, 0, t);
  }
  has(id: string): boolean {
    return this.twins.some((t) => t.deviceId === id);
  }
  remove(id: string): void {
    this.twins = this.twins.filter((t) => t.deviceId !== id);
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface TwinSpec {
  tags?: Record<string, unknown>;
  desired?: Record<string, unknown>;
  reported?: Record<string, unknown>;
  status?: "enabled" | "disabled";
  connectionState?: "Connected" | "Disconnected";
  lastActivityTime?: string;
  version?: number;
  /** written as-is into the section's $version */
  reportedVersion?: number;
}

/** A full twin document as GET /twins/{id} returns it. */
export function makeTwin(deviceId: string, spec: TwinSpec = {}, day = 1): TwinDocument {
  const stamp = `2024-01-${String(day).padStart(2, "0")}T00:00:00Z`;
  const meta = (section: Record<string, unknown>) => {
    const m: Record<string, unknown> = { $lastUpdated: stamp };
    for (const k of Object.keys(section)) m[k] = { $lastUpdated: stamp };
    return m;
  };
  const desired = spec.desired ?? {};
  const reported = spec.reported ?? {};
  return {
    deviceId,
    etag: "AAAAAAAAAAE=",
    deviceEtag: "MTIzNDU2Nzg=",
    status: spec.status ?? "enabled",
    statusUpdateTime: "0001-01-01T00:00:00Z",
    connectionState: spec.connectionState ?? "Disconnected",
    lastActivityTime: spec.lastActivityTime ?? "0001-01-01T00:00:00Z",
    cloudToDeviceMessageCount: 0,
    authenticationType: "sas",
    x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null },
    modelId: "",
    version: spec.version ?? 2,
    tags: spec.tags ?? {},
    properties: {
      desired: { ...desired, $metadata: meta(desired), $version: 1 },
      reported: { ...reported, $metadata: meta(reported), $version: spec.reportedVersion ?? 1 },
    },
  };
}

/**
 * The case fixture: the docs' sample twin (dev01) and variations of it, covering nested tags, missing and
 * null properties, numbers vs numeric strings, booleans, and mixed-case keys.
 */
export const FIXTURE: TwinDocument[] = [
  makeTwin(
    "dev01",
    {
      tags: { location: { region: "US", plant: "Redmond43" } },
      desired: { telemetryConfig: { configId: "db00ebf5", sendFrequencyInSecs: 300 } },
      reported: {
        connectivity: { type: "cellular" },
        telemetryConfig: { configId: "db00ebf5", sendFrequencyInSecs: 300, status: "Success" },
      },
      lastActivityTime: "2021-05-07T00:50:38.0543092Z",
      reportedVersion: 7,
    },
    1,
  ),
  makeTwin(
    "dev02",
    {
      tags: { location: { region: "US", plant: "Redmond44" }, floor: 2 },
      reported: { connectivity: "wired", telemetryConfig: { sendFrequencyInSecs: 30, status: "Success" } },
      connectionState: "Connected",
      lastActivityTime: "2024-02-01T10:00:00Z",
    },
    2,
  ),
  makeTwin(
    "dev03",
    {
      tags: { location: { region: "US", plant: "Redmond43" }, floor: 3 },
      reported: { connectivity: "wifi", telemetryConfig: { sendFrequencyInSecs: 60, status: "Pending" } },
      status: "disabled",
    },
    3,
  ),
  makeTwin(
    "dev04",
    {
      tags: { location: { region: "EU", plant: "Dublin1" }, floor: 1 },
      reported: { connectivity: "wifi", telemetryConfig: { sendFrequencyInSecs: 120, status: "Success" } },
    },
    4,
  ),
  makeTwin(
    "dev05",
    {
      tags: { location: { region: "eu" }, floor: "2" },
      reported: { connectivity: "lte", telemetryConfig: { sendFrequencyInSecs: "60", status: "Pending" } },
      connectionState: "Connected",
    },
    5,
  ),
  makeTwin("dev06", {}, 6),
  makeTwin(
    "dev07",
    {
      tags: { location: null },
      reported: { connectivity: null, telemetryConfig: { sendFrequencyInSecs: null, status: "Error" } },
    },
    7,
  ),
  makeTwin(
    "dev08",
    {
      tags: { Location: { Region: "US", Plant: "Redmond43" } },
      reported: { Connectivity: "Wired", TelemetryConfig: { SendFrequencyInSecs: 600, Status: "Success" } },
      connectionState: "Connected",
    },
    8,
  ),
  makeTwin(
    "dev09",
    {
      tags: { location: { region: "US" }, critical: true },
      reported: { connectivity: "wired", enabled: true, temperature: 21.5 },
    },
    9,
  ),
  makeTwin(
    "dev10",
    {
      tags: { critical: false, floor: 3, weight: 2.5, rank: -1 },
      reported: { enabled: false, temperature: 30, humidity: 16 },
      status: "disabled",
    },
    10,
  ),
  makeTwin(
    "dev11",
    {
      tags: { name: "O'Brien", note: 'say "hi"', city: "Zürich", empty: "" },
      reported: { enabled: "true", temperature: "25" },
    },
    11,
  ),
  makeTwin(
    "dev12",
    {
      tags: { group: { name: "some_value" }, floor: 0 },
      reported: { temperature: -5, telemetryConfig: { status: "Pending" } },
    },
    12,
  ),
  makeTwin(
    "dev13",
    {
      tags: { location: { region: "US", plant: "Redmond43" } },
      desired: { telemetryConfig: { sendFrequencyInSecs: 45 } },
      reported: { telemetryConfig: { sendFrequencyInSecs: 45, status: "Error" } },
      connectionState: "Connected",
    },
    13,
  ),
  makeTwin(
    "dev14",
    {
      tags: { deploymentLocation: { building: "43", floor: "1" } },
      desired: { telemetryConfig: { sendFrequency: "5m" } },
      reported: { telemetryConfig: { sendFrequency: "5m", status: "success" }, batteryLevel: 55 },
    },
    14,
  ),
  makeTwin(
    "dev15",
    {
      tags: { deploymentLocation: { building: "43", floor: 1 } },
      desired: { telemetryConfig: { sendFrequencyInSecs: 90 } },
      reported: { telemetryConfig: { sendFrequencyInSecs: 60, status: "Success" }, batteryLevel: 80 },
      status: "disabled",
      connectionState: "Connected",
    },
    15,
  ),
  makeTwin(
    "dev16",
    {
      tags: { location: { region: "US", plant: "Redmond43", zone: { id: 7 } } },
      reported: { connectivity: { type: "wired" }, temperature: 0 },
      version: 5,
    },
    16,
  ),
];
