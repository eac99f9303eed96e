import { Agent, type AgentOptions, type RequestOptions } from "node:https";
import type { Duplex } from "node:stream";
import { Client as DeviceClient } from "azure-iot-device";
import { MqttWs } from "azure-iot-device-mqtt";
import { type MqttClient, connect as mqttConnect } from "mqtt";
import WebSocket from "ws";
import { makeToken } from "../../../src/hub/auth/sas.js";
import type { RunningHub } from "../../../src/hub/index.js";

/**
 * What MqttWs needs to reach a hub whose HostName carries a port: it builds `wss://<HostName>:443/...`, which the
 * URL parser reads as port 443 (path `/:<port>/$iothub/websocket`, which the hub accepts on that port). This
 * agent, passed as the SDK's `mqtt.webSocketAgent` option, connects to `port` instead of 443.
 */
export class PortAgent extends Agent {
  constructor(
    private readonly port: number,
    options: AgentOptions = {},
  ) {
    super(options);
  }

  override createConnection(
    options: RequestOptions,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    return super.createConnection({ ...options, port: this.port }, callback);
  }
}

/** The unmodified device SDK with its MQTT over WebSockets transport, trusting the hub's CA. */
export async function connectWsDevice(
  hub: RunningHub,
  connectionString: string,
  options: Record<string, unknown> = {},
): Promise<DeviceClient> {
  const client = DeviceClient.fromConnectionString(connectionString, MqttWs);
  await client.setOptions({ ca: hub.caPem, mqtt: { webSocketAgent: new PortAgent(hub.port) }, ...options });
  try {
    await client.open();
  } catch (error) {
    await client.close().catch(() => {});
    throw error;
  }
  return client;
}

export const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

/** mqtt.js over `wss://localhost:<port>/$iothub/websocket` as device `deviceId` with a SAS token. */
export function mqttWs(
  hub: RunningHub,
  deviceId: string,
  key: string,
  options: Record<string, unknown> = {},
): MqttClient {
  return mqttConnect(`wss://localhost:${hub.port}/$iothub/websocket`, {
    clientId: deviceId,
    username: `${hub.hostName}/${deviceId}/?api-version=2021-04-12`,
    password: makeToken(key, `${hub.hostName}/devices/${deviceId}`, inAnHour()),
    ca: hub.caPem,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 30_000,
    ...options,
  });
}

/** Resolves on the client's CONNACK (with its return code), or rejects on an error or close first. */
export function connected(client: MqttClient): Promise<void> {
  return new Promise((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
    client.once("close", () => reject(new Error("closed before CONNACK")));
  });
}

export type Upgrade =
  | { ok: true; socket: WebSocket; protocol: string }
  | { ok: false; status: number; body: string };

/** A raw WebSocket handshake to the hub's port: the open socket, or the HTTP status of the refusal. */
export function rawUpgrade(
  port: number,
  caPem: string,
  path: string,
  protocols: string[] | undefined,
  options: WebSocket.ClientOptions = {},
): Promise<Upgrade> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`wss://localhost:${port}${path}`, protocols, { ca: caPem, ...options });
    socket.once("open", () => resolve({ ok: true, socket, protocol: socket.protocol }));
    socket.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d));
      res.on("end", () => resolve({ ok: false, status: res.statusCode ?? 0, body }));
      res.on("error", () => resolve({ ok: false, status: res.statusCode ?? 0, body }));
    });
    socket.once("error", (error) => reject(error));
  });
}

/** Resolves with the close code once `socket` is closed (by either side), or rejects after `ms`. */
export function closedWithin(socket: WebSocket, ms: number): Promise<number> {
  return new Promise((resolve, reject) => {
    if (socket.readyState === WebSocket.CLOSED) return resolve(1006);
    const timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms);
    socket.on("error", () => {});
    socket.once("close", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}
