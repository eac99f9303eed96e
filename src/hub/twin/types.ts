/** A twin as `GET /twins/{id}` returns it (and as queries see it). */
export interface TwinDocument {
  deviceId: string;
  etag: string;
  deviceEtag: string;
  status: "enabled" | "disabled";
  statusUpdateTime: string;
  connectionState: "Connected" | "Disconnected";
  lastActivityTime: string;
  cloudToDeviceMessageCount: number;
  authenticationType: "sas" | "selfSigned" | "certificateAuthority";
  x509Thumbprint: { primaryThumbprint: string | null; secondaryThumbprint: string | null };
  modelId: string;
  version: number;
  tags: Record<string, unknown>;
  properties: {
    desired: TwinSection;
    reported: TwinSection;
  };
  capabilities?: { iotEdge: boolean };
  deviceScope?: string;
  parentScopes?: readonly string[];
}

/** A property section: user properties plus `$metadata` and `$version`. */
export type TwinSection = Record<string, unknown> & { $metadata: Record<string, unknown>; $version: number };

/** Read access to the hub's twins for the query engine: ascending deviceId order, strictly after `afterId`. */
export interface TwinSource {
  scan(afterId?: string): Iterable<TwinDocument>;
  /** Number of twins (for sizing aggregates; optional use). */
  readonly size: number;
}
