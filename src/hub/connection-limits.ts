import { readFileSync } from "node:fs";
import type { Server as HttpServer, IncomingMessage } from "node:http";
import type { Socket } from "node:net";

/**
 * How long a connection may take and how many the hub holds. IoT Hub publishes no per-socket figures; what
 * is documented: Azure's load balancer drops a TCP flow idle longer than its idle timeout, "The default
 * setting is 4 minutes" ("Configure TCP reset and idle timeout for Azure Load Balancer",
 * learn.microsoft.com/azure/load-balancer/load-balancer-tcp-idle-timeout), and MQTT 3.1.1 section 3.1.4: "If
 * the Server does not receive a CONNECT Packet within a reasonable amount of time after the Network
 * Connection is established, the Server SHOULD close the connection". The rest are chosen far above what a
 * client on this machine needs and low enough that a stuck or hostile client cannot hold the hub's sockets
 * (file descriptors) for long.
 */
export interface ConnectionLimits {
  /**
   * Open connections, all listeners together (HTTPS and MQTT). Beyond it new connections are closed at once.
   * By default also at most half the process's open-file limit where that is known (Linux).
   */
  maxConnections: number;
  /**
   * Connections that have not yet shown they speak the protocol: TLS handshake, first bytes, and for MQTT
   * until the CONNACK, for HTTPS until a complete request head. Kept well below `maxConnections` so that
   * half-open connections cannot take every slot.
   */
  maxPendingConnections: number;
  /** A pending connection (see above) is closed after this long. */
  pendingTimeoutMs: number;
  /** Later requests on a kept-alive HTTPS connection: their head must be complete within this (408 otherwise). */
  headersTimeoutMs: number;
  /** A whole HTTPS request, body included, must arrive within this (408 otherwise): cuts off trickled bodies. */
  requestTimeoutMs: number;
  /**
   * An HTTPS connection in the middle of an exchange on which no byte moves either way for this long is
   * closed (Node's http.Server `timeout`). This also ends a client that pipelines requests and never reads
   * the answers: Node's HTTP server stops reading a connection once the answers queued on it pass the
   * socket's high-water mark, so further requests wait in the kernel's buffers, not in the hub's memory,
   * and then nothing moves.
   */
  idleTimeoutMs: number;
  /**
   * An HTTPS connection between requests is kept this long. It must outlast the clients' own idle timeout
   * (Node's agents drop idle sockets after 5 s): a server that closes first races the client's next request
   * on that socket, which then fails with ECONNRESET. 4 minutes, as Azure's load balancer.
   */
  keepAliveTimeoutMs: number;
}

export const DEFAULT_LIMITS: Readonly<ConnectionLimits> = Object.freeze({
  maxConnections: 10_000,
  maxPendingConnections: 1_000,
  pendingTimeoutMs: 20_000,
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 60_000,
  idleTimeoutMs: 120_000,
  keepAliveTimeoutMs: 240_000,
});

/**
 * Each connection holds a file descriptor; past the process's limit the hub could no longer open its own
 * files (nor accept anyone). On Linux the default cap is kept to half of that limit.
 */
export function fitToFileLimit(maxConnections: number, procLimits: string | undefined): number {
  const soft = Number(/^Max open files\s+(\d+)/m.exec(procLimits ?? "")?.[1]);
  if (!Number.isInteger(soft) || soft <= 0) return maxConnections;
  return Math.max(1, Math.min(maxConnections, Math.floor(soft / 2)));
}

function procLimits(): string | undefined {
  try {
    return readFileSync("/proc/self/limits", "utf8");
  } catch {
    return undefined;
  }
}

export function resolveLimits(partial: Partial<ConnectionLimits> = {}): ConnectionLimits {
  const limits = { ...DEFAULT_LIMITS };
  if (partial.maxConnections === undefined) {
    limits.maxConnections = fitToFileLimit(limits.maxConnections, procLimits());
    limits.maxPendingConnections = Math.min(limits.maxPendingConnections, limits.maxConnections);
  }
  for (const [key, value] of Object.entries(partial) as Array<[keyof ConnectionLimits, unknown]>) {
    if (value === undefined) continue;
    if (!(key in DEFAULT_LIMITS)) throw new Error(`unknown connection limit ${key}`);
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1)
      throw new Error(`connection limit ${key} must be a positive whole number, not ${String(value)}`);
    limits[key] = value;
  }
  if (limits.maxPendingConnections > limits.maxConnections)
    throw new Error("maxPendingConnections must not exceed maxConnections");
  if (limits.requestTimeoutMs < limits.headersTimeoutMs)
    throw new Error("requestTimeoutMs must be at least headersTimeoutMs");
  return limits;
}

/** What the gate knows of one admitted connection. */
export interface Ticket {
  /** The connection proved it speaks the protocol (CONNACK sent, or a complete HTTP request head). */
  activate(): void;
  readonly active: boolean;
}

/**
 * Admission for every listener of one hub: counts open and pending connections, refuses beyond the caps,
 * and closes connections that stay pending too long. Refusals are logged at most once a second with a
 * count, so that an attack does not also flood the log.
 */
export class ConnectionGate {
  private open = 0;
  private pending = 0;
  private readonly tickets = new WeakMap<object, Ticket>();
  /** Refusals not yet logged and when each kind was last logged. */
  private readonly refusals = { total: { count: 0, at: 0 }, pending: { count: 0, at: 0 } };
  private dropped = 0;
  private lastDropLog = 0;

  constructor(
    readonly limits: ConnectionLimits,
    private readonly log: (line: string) => void,
  ) {}

  get openCount() {
    return this.open;
  }
  get pendingCount() {
    return this.pending;
  }

  /** A TCP connection was accepted: a ticket, or undefined when it must be closed at once (it is then logged). */
  admit(socket: Socket): Ticket | undefined {
    const { maxConnections, maxPendingConnections, pendingTimeoutMs } = this.limits;
    if (this.open >= maxConnections) {
      this.refused(socket, "total", `${this.open} connections are open (limit ${maxConnections})`);
      return undefined;
    }
    if (this.pending >= maxPendingConnections) {
      this.refused(
        socket,
        "pending",
        `${this.pending} connections have not completed a TLS handshake and an MQTT CONNECT or HTTP request yet (limit ${maxPendingConnections})`,
      );
      return undefined;
    }
    this.open++;
    this.pending++;
    let active = false;
    let closed = false;
    const timer = setTimeout(() => {
      this.droppedPending(socket);
      socket.destroy();
    }, pendingTimeoutMs);
    timer.unref();
    const ticket: Ticket = {
      activate: () => {
        // A CONNACK may still be written to a connection that has just closed: it was counted then.
        if (active || closed) return;
        active = true;
        this.pending--;
        clearTimeout(timer);
      },
      get active() {
        return active;
      },
    };
    socket.once("close", () => {
      closed = true;
      this.open--;
      if (!active) {
        this.pending--;
        clearTimeout(timer);
      }
    });
    return ticket;
  }

  /** Ties the (TLS) stream a ticket's connection became to the ticket, for `activate(stream)`. */
  bind(stream: object, ticket: Ticket) {
    this.tickets.set(stream, ticket);
  }

  activate(stream: object) {
    this.tickets.get(stream)?.activate();
  }

  /** `to` runs over `from` (a WebSocket over the TLS connection): activating either activates the connection. */
  share(from: object, to: object) {
    const ticket = this.tickets.get(from);
    if (ticket) this.tickets.set(to, ticket);
  }

  private refused(socket: Socket, kind: "total" | "pending", reason: string) {
    const tally = this.refusals[kind];
    tally.count++;
    const now = Date.now();
    if (now - tally.at >= 1000) {
      const others = tally.count - 1;
      this.log(
        `refused a connection from ${socket.remoteAddress ?? "?"}: ${reason}${others > 0 ? ` (${others} more refused since the last report)` : ""}`,
      );
      tally.at = now;
      tally.count = 0;
    }
  }

  private droppedPending(socket: Socket) {
    this.dropped++;
    const now = Date.now();
    if (now - this.lastDropLog >= 1000) {
      this.log(
        `closed ${this.dropped} connection(s) (last from ${socket.remoteAddress ?? "?"}) that did not complete a TLS handshake and an MQTT CONNECT or HTTP request within ${this.limits.pendingTimeoutMs / 1000} s`,
      );
      this.lastDropLog = now;
      this.dropped = 0;
    }
  }
}

/**
 * The HTTP server never listens (the TLS listener hands it connections), and Node arms an http.Server's
 * header and request timers only from its "listening" event: without this they never run. Sets Node's own
 * timers to the hub's limits and starts that tracking, and tells the gate of every request. Returns a
 * function that stops it.
 */
export function guardHttpServer(server: HttpServer, gate: ConnectionGate): () => void {
  const { limits } = gate;
  // A complete request head: the connection is an HTTP client, no longer pending.
  const onRequest = (request: IncomingMessage) => gate.activate(request.socket);
  server.on("request", onRequest);
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.timeout = limits.idleTimeoutMs;
  // How often Node looks for expired requests; a fraction of the shortest bound so they end close to it.
  (server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval = Math.max(
    50,
    Math.min(5_000, Math.floor(limits.headersTimeoutMs / 4)),
  );
  server.emit("listening");
  return () => {
    server.off("request", onRequest);
    // closeIdleConnections/close clear the checking interval that "listening" started.
    server.close(() => {});
  };
}
