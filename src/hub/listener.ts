import type { Server as HttpServer } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createServer, type TLSSocket } from "node:tls";

/** First byte of an MQTT CONNECT packet (type 1, flags 0): MQTT 3.1.1 section 3.1.1. */
const MQTT_CONNECT = 0x10;
/** A connection that says nothing for this long after the TLS handshake is dropped. */
const FIRST_BYTES_TIMEOUT_MS = 10_000;

export interface ProtocolTargets {
  http: HttpServer;
  mqtt: (stream: Duplex) => void;
}

/**
 * One TLS port for both protocols, as IoT Hub has one host name for both: after the handshake the first
 * decrypted byte says whether the client speaks MQTT (CONNECT) or HTTP (a method name).
 */
export function createTlsListener(
  tls: { cert: string; key: string },
  targets: ProtocolTargets,
  log: (line: string) => void,
) {
  const sockets = new Set<Socket>();
  const server = createServer({ cert: tls.cert, key: tls.key, minVersion: "TLSv1.2" }, (socket) =>
    route(socket),
  );

  server.on("connection", (socket: Socket) => {
    // Delayed ACKs stall the handshake's round trips without this (connects drop from ~190/s to ~21/s).
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  // Garbage, plain-text clients and failed handshakes end here; the hub keeps serving.
  server.on("tlsClientError", (error, socket) => {
    log(
      `TLS handshake failed from ${socket.remoteAddress ?? "?"}: ${(error as NodeJS.ErrnoException).code ?? error.message}`,
    );
    socket.destroy();
  });

  function route(socket: TLSSocket) {
    socket.on("error", () => socket.destroy());
    const timer = setTimeout(() => socket.destroy(), FIRST_BYTES_TIMEOUT_MS);
    const onReadable = () => {
      const chunk: Buffer | null = socket.read();
      if (chunk === null) return;
      socket.off("readable", onReadable);
      clearTimeout(timer);
      socket.unshift(chunk);
      if (chunk[0] === MQTT_CONNECT) targets.mqtt(socket);
      else targets.http.emit("connection", socket);
    };
    socket.on("readable", onReadable);
    socket.once("close", () => clearTimeout(timer));
  }

  return {
    server,
    /** Stops accepting and drops every open connection. */
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
