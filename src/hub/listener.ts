import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createServer, type TLSSocket } from "node:tls";
import type { ConnectionGate, Ticket } from "./connection-limits.js";

/** First byte of an MQTT CONNECT packet (type 1, flags 0): MQTT 3.1.1 section 3.1.1. */
const MQTT_CONNECT = 0x10;

export interface ProtocolTargets {
  /** Serves an HTTP connection (the REST API's http.Server gets it as a "connection"). */
  http: (stream: Duplex) => void;
  mqtt: (stream: Duplex) => void;
  /**
   * AMQP on this port too: azure-iothub's service client connects AMQP to `amqps://<HostName>`, which is this
   * port when HostName carries one (HostName=localhost:18883); on IoT Hub's standard ports it is 5671.
   */
  amqp?: (stream: Duplex) => void;
}

/** The AMQP port's targets: AMQP, and HTTP for AMQP over WebSockets (websocket/amqp-port.ts). */
export interface AmqpTargets {
  amqp: (stream: Duplex) => void;
  websocket?: (stream: Duplex) => void;
}

/** "G": a WebSocket handshake is a GET request (RFC 6455 section 4.1). */
const HTTP_GET = 0x47;

/** An AMQP connection begins with its protocol header "AMQP" (AMQP 1.0, section 2.2); no HTTP method does. */
const isAmqpHeader = (chunk: Buffer) => chunk[0] === 0x41 && (chunk.length < 2 || chunk[1] === 0x4d);

/**
 * One TLS port for both protocols, as IoT Hub has one host name for both: after the handshake the first
 * decrypted byte says whether the client speaks MQTT (CONNECT) or HTTP (a method name). Every connection
 * passes the hub's `gate` first (connection caps, and the deadline for becoming an MQTT session or an
 * HTTP request; see connection-limits.ts).
 */
export function createTlsListener(
  tls: { cert: string; key: string },
  targets: ProtocolTargets | AmqpTargets,
  gate: ConnectionGate,
  log: (line: string) => void,
) {
  const sockets = new Set<Socket>();
  /** Admitted TCP connections whose TLS side has not been routed yet, by their address pair. */
  const admitted = new Map<string, Ticket>();
  const refused = new WeakSet<Socket>();
  const server = createServer(
    {
      cert: tls.cert,
      key: tls.key,
      minVersion: "TLSv1.2",
      // X.509 devices authenticate with a client certificate ("Authenticate identities with X.509 certificates":
      // "as part of the TLS standard connection establishment"), so every client is asked for one; none is
      // required (SAS devices and HTTPS service clients present none) and no chain is judged here: that is the
      // hub's decision per device at login (auth/x509.ts), against its own registered CAs and thumbprints.
      requestCert: true,
      rejectUnauthorized: false,
      handshakeTimeout: gate.limits.pendingTimeoutMs,
    },
    (socket) => route(socket),
  );

  // Before the TLS server's own listener: a refused connection is closed before any handshake work.
  server.prependListener("connection", (socket: Socket) => {
    const ticket = gate.admit(socket);
    if (!ticket) {
      refused.add(socket);
      socket.destroy();
      return;
    }
    // Delayed ACKs stall the handshake's round trips without this (connects drop from ~190/s to ~21/s).
    socket.setNoDelay(true);
    sockets.add(socket);
    const key = pairOf(socket);
    admitted.set(key, ticket);
    socket.once("close", () => {
      sockets.delete(socket);
      if (admitted.get(key) === ticket) admitted.delete(key);
    });
  });
  // Garbage, plain-text clients and failed handshakes end here; the hub keeps serving.
  // At most one line a second, with a count: a flood of failed handshakes must not also flood the log.
  let failedSince = 0;
  let failedLoggedAt = 0;
  server.on("tlsClientError", (error, socket) => {
    socket.destroy();
    if (refused.has(socket)) return;
    failedSince++;
    const now = Date.now();
    if (now - failedLoggedAt < 1000) return;
    log(
      `TLS handshake failed from ${socket.remoteAddress ?? "?"}: ${(error as NodeJS.ErrnoException).code ?? error.message}${failedSince > 1 ? ` (and ${failedSince - 1} more since the last report)` : ""}`,
    );
    failedSince = 0;
    failedLoggedAt = now;
  });

  function route(socket: TLSSocket) {
    socket.on("error", () => socket.destroy());
    const key = pairOf(socket);
    const ticket = admitted.get(key);
    admitted.delete(key);
    if (!ticket) {
      // Its TCP side already closed.
      socket.destroy();
      return;
    }
    gate.bind(socket, ticket);
    const onReadable = () => {
      const chunk: Buffer | null = socket.read();
      if (chunk === null) return;
      socket.off("readable", onReadable);
      socket.unshift(chunk);
      // The gate's ticket of an AMQP connection is activated by its AMQP open (amqp/server.ts).
      if (targets.amqp && isAmqpHeader(chunk)) {
        targets.amqp(socket);
        return;
      }
      // The AMQP port serves AMQP, over TLS or over WebSockets.
      if (!("mqtt" in targets)) {
        if (targets.websocket && chunk[0] === HTTP_GET) targets.websocket(socket);
        else socket.destroy();
        return;
      }
      if (chunk[0] === MQTT_CONNECT) {
        // The server's first packet on an MQTT connection is its CONNACK (MQTT 3.1.1 section 3.2): once the
        // broker writes anything the CONNECT was handled, and a refused client is closed right after it.
        const write = socket.write;
        socket.write = function (this: TLSSocket, ...args: Parameters<TLSSocket["write"]>) {
          socket.write = write;
          ticket.activate();
          return write.apply(this, args);
        } as TLSSocket["write"];
        targets.mqtt(socket);
      } else targets.http(socket);
    };
    socket.on("readable", onReadable);
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

/** Both ends of a TCP connection; a TLS socket reports those of the TCP socket it wraps. */
function pairOf(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}|${socket.localAddress}|${socket.localPort}`;
}
