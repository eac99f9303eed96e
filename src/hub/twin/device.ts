/**
 * What the hub keeps per device in memory: identity, twin and session state. Stored in three rows, one per concern
 * (identity, twin, session; see store/rows.ts).
 */
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
  /** Symmetric keys; both empty for a device that authenticates with X.509 ("selfSigned", "certificateAuthority"). */
  primaryKey: string;
  secondaryKey: string;
  /** How the device authenticates; absent in records stored before X.509 identities existed, meaning "sas". */
  authType?: AuthType;
  /** X.509 thumbprints of a "selfSigned" device (hex, upper case), else null. */
  primaryThumbprint?: string | null;
  secondaryThumbprint?: string | null;
  iotEdge: boolean;
  /**
   * "Understand the identity registry > Device identity properties": an edge device's own scope (generated, never
   * changes), or for a leaf device the scope of its parent edge device.
   */
  deviceScope?: string | null;
  /** Edge devices: the scope of the parent edge device (at most one); leaf devices: their deviceScope. */
  parentScopes?: string[];
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
  /**
   * Likewise for direct method requests (`$iothub/methods/POST/#`): IoT Hub sends a method only to a device that
   * subscribed ("404103 DeviceNotOnline ... the direct method callback isn't registered on the device").
   * Optional, like the two flags above, so records stored before direct methods existed need no migration.
   */
  methodsSubscribed?: boolean;
  /**
   * Likewise for cloud-to-device messages (`devices/{id}/messages/devicebound/#`): when the session subscribed (ms
   * since the epoch), absent when it has not. "If the device connects with CleanSession flag set to 0, the
   * subscription is persisted across different sessions", and the device "receives cloud-to-device messages that
   * were sent to it after the time of the subscription" (the MQTT doc): a repeated SUBSCRIBE keeps the time.
   */
  cloudToDeviceSubscribedAt?: number;
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

/** `authentication.type` values of the registry ("Service - Devices": AuthenticationMechanism.type). */
export type AuthType = "sas" | "selfSigned" | "certificateAuthority";

/**
 * A device identity as the registry REST API returns it. `cloudToDeviceMessageCount`: the messages pending in its
 * cloud-to-device queue.
 */
export function renderIdentity(r: DeviceRecord, cloudToDeviceMessageCount = 0) {
  const type = r.authType ?? "sas";
  const sas = type === "sas";
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
    cloudToDeviceMessageCount,
    authentication: {
      symmetricKey: { primaryKey: sas ? r.primaryKey : null, secondaryKey: sas ? r.secondaryKey : null },
      x509Thumbprint: {
        primaryThumbprint: r.primaryThumbprint ?? null,
        secondaryThumbprint: r.secondaryThumbprint ?? null,
      },
      type,
    },
    capabilities: { iotEdge: r.iotEdge },
    deviceScope: r.deviceScope ?? null,
    parentScopes: r.parentScopes ?? [],
  };
}
