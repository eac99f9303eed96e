import { createServer, type Server as HttpServer } from "node:http";
import type { Duplex } from "node:stream";
import { type ConnectionGate, guardHttpServer } from "../connection-limits.js";
import { serveWebSockets } from "./upgrade.js";

/**
 * AMQP over WebSockets on the AMQP port as well. @azure/event-hubs with `webSocketOptions` connects to
 * `wss://<host>:<port>/$servicebus/websocket`, where host and port are the connection string's Endpoint (443 when
 * it names no port, as on Azure). The hub's Event Hubs-compatible connection string names its AMQP port, so that
 * consumer, unmodified, reaches this port with a WebSocket handshake; on Azure the same code goes to 443, which
 * the hub's HTTPS side serves with `--standard-ports`. Only AMQP is served here (MQTT's subprotocol gets 400);
 * any other HTTP request gets 404. An HTTP server that never listens: the TLS listener hands it connections whose
 * first byte is a "G" (GET, the only method of a WebSocket handshake, RFC 6455 section 4.1). Created on the first
 * such connection.
 */
export function amqpPortWebSockets(deps: {
  amqp: (stream: Duplex) => void;
  gate: ConnectionGate;
  log: (line: string) => void;
}) {
  let side: { server: HttpServer; stop: () => void } | undefined;
  return {
    handle(socket: Duplex) {
      if (!side) {
        const server = createServer((_request, response) => {
          response.writeHead(404, { "Content-Type": "text/plain; charset=utf-8", Connection: "close" });
          response.end("This is the AMQP port: AMQP, or AMQP over WebSockets at /$servicebus/websocket\n");
        });
        const stopWebSockets = serveWebSockets(server, { amqp: deps.amqp }, deps.gate, deps.log);
        const unguard = guardHttpServer(server, deps.gate);
        side = {
          server,
          stop: () => {
            stopWebSockets();
            unguard();
          },
        };
      }
      side.server.emit("connection", socket);
    },
    close() {
      side?.stop();
    },
  };
}
