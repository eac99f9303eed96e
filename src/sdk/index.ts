import { Agent, type AgentOptions, type RequestOptions } from "node:https";
import type { Duplex } from "node:stream";
import { rootCertificates } from "node:tls";
import type { Client as DeviceClient } from "azure-iot-device";
import type { Registry, Client as ServiceClient } from "azure-iothub";
import type { DeviceConnectionString, ServiceConnectionString } from "../config/index.js";

/**
 * The one place that adapts the official SDK clients to a hub at a custom host:port with a private CA.
 *
 * - Service side: `Registry.fromConnectionString` hands `HostName` to `https.request` as `host`, which does not
 *   understand `host:port` (ENOTFOUND). The registry's HTTP layer honours `setOptions({ http: { agent }, ca })`,
 *   so we give it an agent whose connections split `host:port`, and the CA to trust.
 * - Device side: the MQTT transport connects to `mqtts://<HostName>`, which honours a port already; a private
 *   CA is passed with `client.setOptions({ ca })`.
 * - A plain Azure connection string (no port, no extra CA) goes through the SDKs untouched.
 *
 * The SDKs are loaded on first use: importing them costs a few hundred milliseconds that `--help` should not pay.
 */

export type { DeviceClient, Registry, ServiceClient };

/** Splits `host:port` (as IoT Hub connection strings write it) into host and port. */
export function splitHostPort(hostName: string): { host: string; port: number | undefined } {
  const match = /^(.*):(\d{1,5})$/.exec(hostName);
  if (!match || match[1]!.includes(":")) return { host: hostName, port: undefined };
  return { host: match[1]!, port: Number(match[2]) };
}

/**
 * An HTTPS agent for hosts written as `host:port`: `https.request({ host: "localhost:18883" })` would look up
 * a machine literally named "localhost:18883"; this agent connects to localhost, port 18883 instead. The TLS
 * server name is the host without the port (Node derives it from the Host header), so certificates verify
 * as usual.
 */
export class HostPortAgent extends Agent {
  constructor(options: AgentOptions = {}) {
    super({ keepAlive: true, ...options });
  }

  override createConnection(
    options: RequestOptions,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const { host, port } = splitHostPort(options.host ?? "");
    if (port === undefined) return super.createConnection(options, callback);
    const servername = options.servername ?? (/^[\d.]+$/.test(host) ? undefined : host);
    return super.createConnection({ ...options, host, hostname: host, port, servername }, callback);
  }
}

/**
 * The CAs to trust when an extra one is configured: Node's usual roots plus that one. (A bare `ca` option would
 * replace the roots, so a forgotten IOTHUB_CA_FILE would break connections to Azure.)
 */
export function trustedCas(extraCa: string): string {
  return `${rootCertificates.join("\n")}\n${extraCa.trim()}\n`;
}

/** True when the SDK cannot reach this hub on its own: `HostName` has a port, or an extra CA must be trusted. */
export function needsAdapter(hostName: string, ca: string | undefined): boolean {
  return splitHostPort(hostName).port !== undefined || ca !== undefined;
}

export interface ServiceClients {
  registry: Registry;
  /** True when the registry was adapted (custom port or CA); false for a plain Azure connection string. */
  adapted: boolean;
  /** Releases the kept-alive connections. */
  close(): void;
}

interface RestApiClientLike {
  setOptions(options: unknown): void;
}

/** A `Registry` for the service connection string, reaching `host:port` and also trusting `ca` when given. */
export async function createRegistry(
  connection: ServiceConnectionString,
  ca?: string,
): Promise<ServiceClients> {
  const { default: iothub } = await import("azure-iothub");
  const registry = iothub.Registry.fromConnectionString(connection.value);
  if (!needsAdapter(connection.hostName, ca)) {
    return { registry, adapted: false, close: () => {} };
  }
  return { registry, adapted: true, close: adaptRestClient(registry, ca) };
}

/**
 * The service `Client` (direct methods: `invokeDeviceMethod`) for the service connection string, adapted like
 * `createRegistry`. Its HTTPS side needs no `open()`; `close` releases the kept-alive connections.
 */
export async function createServiceClient(
  connection: ServiceConnectionString,
  ca?: string,
): Promise<{ client: ServiceClient; adapted: boolean; close(): void }> {
  const { default: iothub } = await import("azure-iothub");
  const client = iothub.Client.fromConnectionString(connection.value);
  if (!needsAdapter(connection.hostName, ca)) return { client, adapted: false, close: () => {} };
  return { client, adapted: true, close: adaptRestClient(client, ca) };
}

/**
 * Points an azure-iothub `Registry` or `Client` at `host:port`, also trusting `ca` when given; returns what
 * releases its connections. Both keep their REST client in a private field and, in their constructors, replace
 * its HTTP options with their own keep-alive agent; setting ours afterwards is what routes requests to
 * host:port with our CA.
 */
export function adaptRestClient(
  sdkClient: Registry | ServiceClient,
  ca?: string,
  agentOptions: AgentOptions = {},
): () => void {
  const restApiClient = (sdkClient as unknown as { _restApiClient?: Partial<RestApiClientLike> })
    ._restApiClient;
  if (typeof restApiClient?.setOptions !== "function") {
    throw new Error(
      "This version of azure-iothub does not expose its REST client; cannot reach a HostName with a port or a custom CA.",
    );
  }
  const trusted = ca ? trustedCas(ca) : undefined;
  const agent = new HostPortAgent(trusted ? { ...agentOptions, ca: trusted } : agentOptions);
  restApiClient.setOptions(trusted ? { http: { agent }, ca: trusted } : { http: { agent } });
  return () => agent.destroy();
}

/** A device client over MQTT for the device connection string, also trusting `ca` when given. */
export async function createDeviceClient(
  connection: DeviceConnectionString,
  ca?: string,
): Promise<DeviceClient> {
  const [{ default: device }, { default: mqtt }] = await Promise.all([
    import("azure-iot-device"),
    import("azure-iot-device-mqtt"),
  ]);
  const client = device.Client.fromConnectionString(connection.value, mqtt.Mqtt);
  // The MQTT transport connects to mqtts://<HostName>, port included; only the CA needs passing.
  if (ca) await client.setOptions({ ca: trustedCas(ca) });
  return client;
}
