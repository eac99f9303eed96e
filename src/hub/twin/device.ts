/** What the hub keeps per device: identity plus twin state. Stored as JSON, one row per device. */
export interface DeviceRecord {
  deviceId: string;
  generationId: string;
  /** Identity etag (changes when the identity changes). */
  etag: string;
  status: "enabled" | "disabled";
  statusReason: string | null;
  statusUpdatedTime: string;
  connectionState: "Connected" | "Disconnected";
  connectionStateUpdatedTime: string;
  lastActivityTime: string;
  primaryKey: string;
  secondaryKey: string;
  iotEdge: boolean;
  twin: TwinState;
  /**
   * The device's persistent MQTT session (CleanSession=0) is subscribed to desired-property updates. IoT Hub
   * keeps a persistent session's subscriptions across connections, and the device SDKs rely on that: they do
   * not subscribe again after reconnecting.
   */
  desiredSubscribed?: boolean;
  /**
   * Likewise for twin responses (`$iothub/twin/res/#`): IoT Hub answers twin requests only to a session that
   * subscribed to them, and the SDKs subscribe once per client, not once per connection.
   */
  twinResponsesSubscribed?: boolean;
}

export interface TwinState {
  version: number;
  tags: Record<string, unknown>;
  desired: SectionState;
  reported: SectionState;
}

export interface SectionState {
  version: number;
  props: Record<string, unknown>;
  /** `$metadata` tree mirroring `props`: `$lastUpdated` (and `$lastUpdatedVersion` in desired) per node. */
  meta: Record<string, unknown>;
}

/** IoT Hub's "never" timestamp, used for times that have not happened yet. */
export const NEVER = "0001-01-01T00:00:00Z";

/** A device identity as the registry REST API returns it. */
export function renderIdentity(r: DeviceRecord) {
  return {
    deviceId: r.deviceId,
    generationId: r.generationId,
    etag: r.etag,
    connectionState: r.connectionState,
    status: r.status,
    statusReason: r.statusReason,
    connectionStateUpdatedTime: r.connectionStateUpdatedTime,
    statusUpdatedTime: r.statusUpdatedTime,
    lastActivityTime: r.lastActivityTime,
    cloudToDeviceMessageCount: 0,
    authentication: {
      symmetricKey: { primaryKey: r.primaryKey, secondaryKey: r.secondaryKey },
      x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null },
      type: "sas",
    },
    capabilities: { iotEdge: r.iotEdge },
  };
}
