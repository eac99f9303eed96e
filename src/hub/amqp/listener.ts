import type { Socket } from "node:net";
import { createServer } from "node:tls";

/** Open AMQP connections at once; more are dropped at once (IoT Hub's quotas bound connections too). */
export const MAX_AMQP_CONNECTIONS = 1000;
/** A TLS handshake must finish within this long. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * The AMQP port: TLS with the hub's certificate (the same one as the HTTPS/MQTT port), then AMQP 1.0 on the
 * decrypted stream ("Communicate with your IoT hub using the AMQP protocol": AMQP over TLS on port 5671).
 */
export function createAmqpListener(
  tls: { cert: string; key: string },
  serve: (socket: import("node:tls").TLSSocket) => void,
  log: (line: string) => void,
) {
  const sockets = new Set<Socket>();
  const server = createServer(
    { cert: tls.cert, key: tls.key, minVersion: "TLSv1.2", handshakeTimeout: HANDSHAKE_TIMEOUT_MS },
    (socket) => {
      socket.on("error", () => socket.destroy());
      serve(socket);
    },
  );
  server.on("connection", (socket: Socket) => {
    if (sockets.size >= MAX_AMQP_CONNECTIONS) {
      log(`AMQP connection refused: ${MAX_AMQP_CONNECTIONS} connections already open`);
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("tlsClientError", (error, socket) => {
    log(
      `AMQP TLS handshake failed from ${socket.remoteAddress ?? "?"}: ${(error as NodeJS.ErrnoException).code ?? error.message}`,
    );
    socket.destroy();
  });
  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
