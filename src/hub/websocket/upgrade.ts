import type { Server as HttpServer, IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { WebSocket, WebSocketServer } from "ws";
import { MAX_AMQP_FRAME_BYTES } from "../amqp/frame-guard.js";
import type { ConnectionGate } from "../connection-limits.js";
import { MAX_MQTT_PACKET_BYTES } from "../mqtt/frame-guard.js";
import { routeUpgrade, type WebSocketTarget } from "./routes.js";

type Ws = typeof import("ws");

/** The front ends WebSocket connections are handed to. */
export interface WebSocketTargets {
  /** `tls`: the TLS connection under the WebSocket, for the client certificate of an X.509 device. */
  mqtt?: (stream: Duplex, tls: Duplex) => void;
  amqp?: (stream: Duplex) => void;
}

/**
 * The largest WebSocket message accepted, per protocol; a larger one closes the connection (close code 1009)
 * before it is buffered whole. MQTT: one MQTT packet (IoT Hub's 256 KB message plus a topic, the limit MQTT over
 * TLS has too, mqtt/frame-guard.ts); AMQP: one frame of the max-frame-size the hub advertises (amqp/frame-guard.ts).
 * The clients send one packet or frame per message (mqtt.js and rhea write them one by one).
 */
export const MAX_WEBSOCKET_MESSAGE_BYTES: Readonly<Record<WebSocketTarget, number>> = {
  mqtt: MAX_MQTT_PACKET_BYTES,
  amqp: MAX_AMQP_FRAME_BYTES,
};

/**
 * MQTT and AMQP over WebSockets on an HTTP server that the TLS listener hands connections to (the HTTPS side of
 * the hub's port). Handles the server's "upgrade" requests: routes.ts decides from the path and the subprotocol,
 * `ws` does the handshake and the framing, and the front end gets the WebSocket as a byte stream, so the session,
 * authentication, topics and limits are exactly those of the protocol over TLS. `ws` is loaded on the first
 * upgrade. Returns a function that stops serving upgrades.
 *
 * Connection limits: the TCP connection stays the one the gate admitted. An upgrade request is not a "request"
 * to the gate (guardHttpServer), so the connection stays pending until the MQTT CONNACK is written or the AMQP
 * open arrives, under the same deadline as MQTT or AMQP over TLS. The HTTP server's idle timer is switched off
 * on the upgraded connection: MQTT's keep-alive and AMQP's idle timeout govern it from then on.
 */
export function serveWebSockets(
  server: HttpServer,
  targets: WebSocketTargets,
  gate: ConnectionGate,
  log: (line: string) => void,
): () => void {
  let ws: Ws | undefined;
  let loading: Promise<Ws> | undefined;
  const servers = new Map<WebSocketTarget, WebSocketServer>();
  /** Refusals are logged at most once a second, with a count, as the listener does for failed handshakes. */
  let refusedSince = 0;
  let refusedLoggedAt = 0;

  const serverFor = (lib: Ws, target: WebSocketTarget) => {
    let wss = servers.get(target);
    if (!wss) {
      wss = new lib.WebSocketServer({
        noServer: true,
        clientTracking: false,
        maxPayload: MAX_WEBSOCKET_MESSAGE_BYTES[target],
        // Compression costs CPU and memory per connection and no IoT SDK needs it; an offer is declined.
        perMessageDeflate: false,
        // routes.ts has chosen: answer the subprotocol it matched (RFC 6455 section 4.2.2).
        handleProtocols: (_offered, request) => (request as UpgradeRequest).chosenSubprotocol ?? false,
      });
      servers.set(target, wss);
    }
    return wss;
  };

  const refuse = (socket: Duplex, reason: string, from: string | undefined) => {
    // An answer, then the end of the connection: the client gets a readable refusal, nothing more is read.
    const body = `${reason}\n`;
    socket.end(
      `HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      () => socket.destroy(),
    );
    refusedSince++;
    const now = Date.now();
    if (now - refusedLoggedAt < 1000) return;
    log(
      `WebSocket upgrade from ${from ?? "?"} refused: ${reason}${refusedSince > 1 ? ` (and ${refusedSince - 1} more since the last report)` : ""}`,
    );
    refusedSince = 0;
    refusedLoggedAt = now;
  };

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const tls = request.socket;
    try {
      const offered = parseSubprotocols(request.headers["sec-websocket-protocol"]);
      const decision = routeUpgrade(request.url, offered, tls.localPort);
      if (!decision.ok) return refuse(socket, decision.reason, tls.remoteAddress);
      const target = decision.target;
      if (!targets[target])
        return refuse(
          socket,
          `${target.toUpperCase()} over WebSockets is not served on this port`,
          tls.remoteAddress,
        );
      (request as UpgradeRequest).chosenSubprotocol = decision.subprotocol;
      // The HTTP server's idle timer is for HTTP exchanges; from here on the protocol's own keep-alive rules.
      tls.setTimeout(0);
      const go = (lib: Ws) => {
        if (socket.destroyed) return;
        serverFor(lib, target).handleUpgrade(request, socket, head, (webSocket) =>
          accept(lib, webSocket, target, tls),
        );
      };
      if (ws) return go(ws);
      loading ??= import("ws").then((m) => {
        ws = m;
        return m;
      });
      loading.then(go, (error: unknown) => {
        loading = undefined;
        log(`WebSocket support could not load ws: ${(error as Error)?.message}`);
        socket.destroy();
      });
    } catch (error) {
      log(`WebSocket upgrade failed: ${(error as Error)?.stack ?? error}`);
      socket.destroy();
    }
  };

  const accept = (lib: Ws, webSocket: WebSocket, target: WebSocketTarget, tls: Duplex) => {
    try {
      // ws reports bad frames, oversized messages and socket errors as "error" (and then closes): heard here, so
      // none of them can end the process.
      webSocket.on("error", () => {});
      let stream: Duplex | undefined;
      // MQTT 3.1.1 section 6.0: "MQTT Control Packets MUST be sent in WebSocket binary data frames. If any other
      // type of data frame is received the recipient MUST close the Network Connection". The AMQP WebSocket
      // Binding carries AMQP in binary messages too. Registered before the stream's own listener, so a text
      // message never reaches the protocol.
      webSocket.on("message", (_data, isBinary) => {
        if (isBinary) return;
        webSocket.terminate();
        stream?.destroy();
      });
      stream = lib.createWebSocketStream(webSocket);
      const s = stream;
      batchWrites(s, webSocket);
      s.on("error", () => s.destroy());
      // The stream ends when the WebSocket closes; it must also be destroyed so the front ends see "close".
      webSocket.once("close", () => s.destroy());
      if (target === "mqtt") {
        // As MQTT over TLS (listener.ts): the first thing the hub writes is the CONNACK, and from then on the
        // connection is no longer pending.
        const write = s.write;
        s.write = function (this: Duplex, ...args: Parameters<Duplex["write"]>) {
          s.write = write;
          gate.activate(tls);
          return write.apply(this, args);
        } as Duplex["write"];
        targets.mqtt?.(s, tls);
      } else {
        // The AMQP server activates the stream it serves when the client's open arrives.
        gate.share(tls, s);
        targets.amqp?.(s);
      }
    } catch (error) {
      log(`WebSocket connection setup failed: ${(error as Error)?.stack ?? error}`);
      webSocket.terminate();
    }
  };

  server.on("upgrade", onUpgrade);
  return () => {
    server.off("upgrade", onUpgrade);
    for (const wss of servers.values()) wss.close();
    servers.clear();
  };
}

/**
 * One WebSocket message per flush instead of one per write. aedes and rhea write a packet in pieces (mqtt-packet
 * writes header, topic and payload separately, corked until the next tick); over TLS the socket's `writev` sends
 * them as one record, but ws's stream has no `writev`, so each piece became its own WebSocket frame and its own
 * TLS record. With this, pieces written together (corked, or while an earlier send is still being written) go
 * out as one binary message; MQTT and the AMQP WebSocket binding let a message carry partial or several packets
 * or frames (MQTT 3.1.1 section 6.0: "A single WebSocket data frame can contain multiple or partial MQTT Control
 * Packets").
 */
function batchWrites(stream: Duplex, webSocket: WebSocket): void {
  (stream as Duplex & { _writev: Duplex["_writev"] })._writev = (chunks, callback) => {
    if (webSocket.readyState !== webSocket.OPEN) return callback(new Error("WebSocket is not open"));
    const buffers = chunks.map(({ chunk }) => (Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)));
    webSocket.send(buffers.length === 1 ? buffers[0] : Buffer.concat(buffers), { binary: true }, callback);
  };
}

interface UpgradeRequest extends IncomingMessage {
  chosenSubprotocol?: string;
}

/** `Sec-WebSocket-Protocol`: a comma-separated list of tokens (RFC 6455 section 11.3.4), possibly repeated. */
function parseSubprotocols(header: string | string[] | undefined): string[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join(",") : header;
  return text
    .slice(0, 1024)
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
}
