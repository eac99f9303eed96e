import { mkdtempSync, rmSync } from "node:fs";
import type { AgentOptions } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client as DeviceClient, type Twin as DeviceTwin } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import { Registry, Client as ServiceClient } from "azure-iothub";
import { type HubOptions, type RunningHub, startHub } from "../../src/hub/index.js";
import type { TwinDocument } from "../../src/hub/twin/types.js";
import { adaptRestClient, HostPortAgent } from "../../src/sdk/index.js";

/** A hub on a free port with a temporary data directory, removed by `cleanup`. */
export async function startTestHub(
  options: HubOptions = {},
): Promise<RunningHub & { cleanup(): Promise<void> }> {
  const dataDir = options.inMemory ? undefined : mkdtempSync(join(tmpdir(), "hub-test-"));
  const hub = await startHub({ port: 0, dataDir, quiet: true, ...options });
  return Object.assign(hub, {
    async cleanup() {
      await hub.stop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  });
}

/** The real SDK Registry pointed at the hub's port and CA through the product's adapter agent (src/sdk). */
export function registryFor(connectionString: string, caPem: string): Registry {
  const registry = Registry.fromConnectionString(connectionString);
  // biome-ignore lint/suspicious/noExplicitAny: the SDK keeps its RestApiClient private (see src/sdk)
  (registry as any)._restApiClient.setOptions({
    http: { agent: new HostPortAgent({ ca: caPem }) },
    ca: caPem,
  });
  return registry;
}

/** The real SDK service Client (direct methods) through the product's adapter (src/sdk); `close` frees its agent. */
export function serviceClientFor(
  connectionString: string,
  caPem: string,
  agentOptions: AgentOptions = {},
): { client: ServiceClient; close(): void } {
  const client = ServiceClient.fromConnectionString(connectionString);
  return { client, close: adaptRestClient(client, caPem, agentOptions) };
}

export async function connectDevice(connectionString: string, caPem: string): Promise<DeviceClient> {
  const client = DeviceClient.fromConnectionString(connectionString, Mqtt);
  await client.setOptions({ ca: caPem });
  await client.open();
  return client;
}

export function getDeviceTwin(client: DeviceClient): Promise<DeviceTwin> {
  return client.getTwin();
}

export function reportProperties(twin: DeviceTwin, patch: Record<string, unknown>): Promise<void> {
  return new Promise((resolve, reject) =>
    twin.properties.reported.update(patch, (err?: Error) => (err ? reject(err) : resolve())),
  );
}

/** Resolves with the first value `probe` returns that is not undefined, polling until `ms` runs out. */
export async function eventually<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  ms = 5000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The twin exactly as the hub sent it (the SDK's Twin type omits version and connectionState). */
export async function twinOf(registry: Registry, deviceId: string): Promise<TwinDocument> {
  return (await registry.getTwin(deviceId)).responseBody as unknown as TwinDocument;
}

/** Awaits a rejection and returns the SDK's typed error class name (ArgumentError, InvalidEtagError, ...). */
export async function sdkErrorOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as Error).constructor.name;
  }
  throw new Error("expected the call to fail");
}
