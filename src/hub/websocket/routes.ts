import { WEBSOCKET } from "../protocol.js";

/** The front end a WebSocket connection is handed to. */
export type WebSocketTarget = "mqtt" | "amqp";

/**
 * The upgrade routing table: path, then offered subprotocol, then front end. IoT Hub takes MQTT and AMQP over
 * WebSockets on port 443 ("Communicate with an IoT hub using the MQTT protocol": "MQTT v3.1.1 over WebSocket on
 * TCP port 443"; "Communicate with your IoT hub by using the AMQP Protocol": "AMQP over WebSockets" on port 443),
 * both on `/$iothub/websocket` told apart by the subprotocol (azure-iot-device-mqtt's MqttWs offers `mqtt`,
 * azure-iothub's AmqpWs `AMQPWSB10`). `/$servicebus/websocket` is the Event Hubs path (@azure/event-hubs with
 * `webSocketOptions`), for the Event Hubs-compatible endpoint this hub serves on the same host.
 */
export const WEBSOCKET_ROUTES: ReadonlyArray<{
  path: string;
  subprotocols: Readonly<Record<string, WebSocketTarget>>;
}> = [
  {
    path: WEBSOCKET.iothubPath,
    subprotocols: { [WEBSOCKET.mqttSubprotocol]: "mqtt", [WEBSOCKET.amqpSubprotocol]: "amqp" },
  },
  { path: WEBSOCKET.servicebusPath, subprotocols: { [WEBSOCKET.amqpSubprotocol]: "amqp" } },
];

export type RouteDecision =
  | { ok: true; target: WebSocketTarget; subprotocol: string }
  | { ok: false; reason: string };

/**
 * Where an upgrade request goes, or why it is refused. IoT Hub refuses a WebSocket handshake whose path is not
 * `/$iothub/websocket` or that does not offer the `mqtt` subprotocol with HTTP 400 (the docs do not say; this is
 * what IoT Hub answers, as reported on the MQTT doc's own issue tracker); the hub does the same for every refusal.
 * The query string is ignored: the C and Python SDKs add `?iothub-no-client-cert=true`.
 *
 * `localPort`: the port the request came in on. azure-iot-device-mqtt's MqttWs builds its URL as
 * `wss://<HostName>:443/$iothub/websocket`; with a HostName that carries a port (`localhost:18883`, possible only
 * with a local hub: IoT Hub's host names have none) the URL parser reads that as host `localhost:443` and path
 * `/:18883/$iothub/websocket`. That path is accepted when the number is the port the request came in on, so
 * a client that reaches the port (MqttWs with an `mqtt.webSocketAgent` that connects there) is served. Against
 * IoT Hub the same code sends `/$iothub/websocket`.
 */
export function routeUpgrade(
  url: string | undefined,
  offered: ReadonlySet<string> | readonly string[],
  localPort?: number,
): RouteDecision {
  const raw = url ?? "";
  const q = raw.indexOf("?");
  let path = q < 0 ? raw : raw.slice(0, q);
  if (localPort !== undefined && path === `/:${localPort}${WEBSOCKET.iothubPath}`)
    path = WEBSOCKET.iothubPath;
  const route = WEBSOCKET_ROUTES.find((r) => r.path === path);
  if (!route) return { ok: false, reason: `no WebSocket endpoint at ${JSON.stringify(path.slice(0, 200))}` };
  for (const subprotocol of offered) {
    const target = Object.hasOwn(route.subprotocols, subprotocol)
      ? route.subprotocols[subprotocol]
      : undefined;
    if (target) return { ok: true, target, subprotocol };
  }
  const wanted = Object.keys(route.subprotocols).join(" or ");
  const list = [...offered].join(", ").slice(0, 200);
  return {
    ok: false,
    reason: `${route.path} needs the subprotocol ${wanted}${list ? `, not ${JSON.stringify(list)}` : " (none was offered)"}`,
  };
}
