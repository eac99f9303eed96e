/** Client-side helpers: a Registry whose HTTP requests are counted, and raw MQTT devices for load. */
import type { ClientRequest } from "node:http";
import type { Duplex } from "node:stream";
import iothub, { type Registry } from "azure-iothub";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import WebSocket, { createWebSocketStream } from "ws";
import { makeToken } from "../src/hub/auth/sas.js";
import { HostPortAgent } from "../src/sdk/index.js";

export interface CountingRegistry {
  registry: Registry;
  /** HTTP requests sent so far. */
  readonly requests: number;
  close(): void;
}

/**
 * The real SDK Registry, reaching host:port with the hub's CA through the product's adapter agent; every
 * request the SDK sends through the agent is counted.
 */
export function countingRegistry(connectionString: string, caPem: string): CountingRegistry {
  const registry = iothub.Registry.fromConnectionString(connectionString);
  const agent = new HostPortAgent({ ca: caPem });
  let requests = 0;
  // https.Agent#addRequest is how every request on the agent starts (Node's own, not in the typings).
  const withAdd = agent as unknown as { addRequest: (req: ClientRequest, options: unknown) => void };
  const addRequest = withAdd.addRequest.bind(agent);
  withAdd.addRequest = (req, options) => {
    requests++;
    addRequest(req, options);
  };
  (registry as unknown as { _restApiClient: { setOptions(o: unknown): void } })._restApiClient.setOptions({
    http: { agent },
    ca: caPem,
  });
  return {
    registry,
    get requests() {
      return requests;
    },
    close: () => agent.destroy(),
  };
}

/** Registers `ids` as enabled SAS devices with the same `key`, 100 per bulk request (the bulk API's limit). */
export async function registerSasDevices(
  hub: { serviceConnectionString?: string; caPem: string },
  ids: readonly string[],
  key: string,
): Promise<void> {
  const { registry, close } = countingRegistry(hub.serviceConnectionString!, hub.caPem);
  try {
    for (let first = 0; first < ids.length; first += 100) {
      await registry.addDevices(
        ids.slice(first, first + 100).map((id) => ({
          deviceId: id,
          status: "enabled" as const,
          authentication: { symmetricKey: { primaryKey: key, secondaryKey: key } },
        })),
      );
    }
  } finally {
    close();
  }
}

export interface DeviceTarget {
  port: number;
  caPem: string;
  /** For the hub: the HostName its tokens and usernames name. Undefined for the bare broker. */
  hostName?: string;
  key?: string;
  /** X.509 devices: the certificate and key each device presents in the TLS handshake (and no password). */
  certificateOf?: (deviceId: string) => { cert: string; key: string };
  /**
   * MQTT over WebSockets (`wss://localhost:<port>/$iothub/websocket`, subprotocol mqtt) instead of MQTT over TLS:
   * "batched" sends each packet as one WebSocket message (as the TLS socket's writev sends it as one record),
   * "mqtt.js" uses mqtt.js's own WebSocket stream (what azure-iot-device-mqtt's MqttWs uses), which sends every
   * piece mqtt-packet writes (header, topic, payload) as a frame of its own.
   */
  websocket?: "batched" | "mqtt.js";
}

/** A WebSocket to the hub as a stream whose corked or queued writes go out as one binary message. */
function batchedWebSocket(url: string, caPem: string): Duplex {
  const socket = new WebSocket(url, ["mqtt"], { ca: caPem, perMessageDeflate: false });
  const stream = createWebSocketStream(socket);
  (stream as Duplex & { _writev: Duplex["_writev"] })._writev = (chunks, callback) => {
    const send = () =>
      socket.send(Buffer.concat(chunks.map(({ chunk }) => chunk as Buffer)), { binary: true }, callback);
    if (socket.readyState === socket.CONNECTING) socket.once("open", send);
    else send();
  };
  return stream;
}

/** One MQTT 3.1.1 connection over TLS as the device `deviceId` (IoT Hub's username and SAS password). */
export function connectDevice(target: DeviceTarget, deviceId: string): Promise<MqttClient> {
  // mqtt.js hands TLS options such as servername to tls.connect; its typings do not list them.
  const options: IClientOptions & { servername: string } = {
    host: "127.0.0.1",
    port: target.port,
    protocol: "mqtts",
    servername: "localhost",
    ca: target.caPem,
    clientId: deviceId,
    protocolVersion: 4,
    clean: true,
    keepalive: 600,
    reconnectPeriod: 0,
    connectTimeout: 60_000,
  };
  if (target.hostName && target.certificateOf) {
    options.username = `${target.hostName}/${deviceId}/?api-version=2021-04-12`;
    Object.assign(options, target.certificateOf(deviceId));
  } else if (target.hostName && target.key) {
    options.username = `${target.hostName}/${deviceId}/?api-version=2021-04-12`;
    options.password = makeToken(
      target.key,
      `${target.hostName}/devices/${deviceId}`,
      Math.floor(Date.now() / 1000) + 3600,
    );
  }
  return new Promise((resolve, reject) => {
    // Over WebSockets ws sets TCP_NODELAY on its socket itself.
    const { host: _host, port: _port, protocol: _protocol, ...common } = options;
    const url = `wss://localhost:${target.port}/$iothub/websocket`;
    const client =
      target.websocket === "mqtt.js"
        ? mqtt.connect(url, common)
        : target.websocket === "batched"
          ? new mqtt.MqttClient(() => batchedWebSocket(url, target.caPem), common)
          : mqtt.connect(options);
    const fail = (error: Error) => {
      client.end(true);
      reject(error);
    };
    client.once("connect", () => {
      client.off("error", fail);
      // As on the hub's side: without this, Nagle's algorithm holds back small packets while the previous
      // one is unacknowledged, and delayed ACKs turn that into tens of milliseconds per request.
      (client as unknown as { stream?: { setNoDelay?(on: boolean): void } }).stream?.setNoDelay?.(true);
      resolve(client);
    });
    client.once("error", fail);
  });
}

/** Connects many devices, `parallel` handshakes at a time; returns the clients and the connect rate. */
export async function connectMany(
  target: DeviceTarget,
  ids: readonly string[],
  parallel = 20,
): Promise<{ clients: MqttClient[]; perSecond: number }> {
  const clients: MqttClient[] = new Array(ids.length);
  const started = Date.now();
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const i = next++;
      clients[i] = await connectDevice(target, ids[i]);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(parallel, ids.length) }, worker));
  } catch (error) {
    await closeAll(clients.filter(Boolean));
    throw error;
  }
  return { clients, perSecond: ids.length / Math.max(0.001, (Date.now() - started) / 1000) };
}

export async function closeAll(clients: readonly MqttClient[]): Promise<void> {
  await Promise.all(clients.map((c) => new Promise<void>((resolve) => c.end(true, {}, () => resolve()))));
}

export function subscribe(client: MqttClient, topic: string): Promise<void> {
  return new Promise((resolve, reject) =>
    client.subscribe(topic, { qos: 0 }, (error, granted) => {
      if (error) return reject(error);
      if (granted?.[0]?.qos === 128) return reject(new Error(`subscription to ${topic} refused`));
      resolve();
    }),
  );
}

/** Runs `task` over `items` with at most `parallel` in flight. */
export async function pool<T>(items: readonly T[], parallel: number, task: (item: T) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, worker));
}

/** Sends one reported-property patch and waits for the hub's 204. */
export function reportOnce(client: MqttClient, patch: unknown, rid = "1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const onMessage = (topic: string) => {
      const m = /^\$iothub\/twin\/res\/(\d+)\/\?\$rid=([^&]+)(?:&\$version=(\d+))?/.exec(topic);
      if (!m || m[2] !== rid) return;
      client.off("message", onMessage);
      if (m[1] === "204") resolve(Number(m[3]));
      else reject(new Error(`reported patch answered ${m[1]}`));
    };
    client.on("message", onMessage);
    client.publish(`$iothub/twin/PATCH/properties/reported/?$rid=${rid}`, JSON.stringify(patch), { qos: 0 });
  });
}

/**
 * The next page of a query. azure-iothub's promise form `query.next()` does not send the continuation token
 * it got from the previous page (it uses its argument, undefined, instead of `query.continuationToken`), so
 * it would return the first page forever; passing the token explicitly works.
 */
export function nextPage(query: ReturnType<Registry["createQuery"]>) {
  return query.continuationToken ? query.next(query.continuationToken) : query.next();
}
