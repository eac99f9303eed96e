import type { Duplex } from "node:stream";
import type { Connection, ConnectionEvents, ConnectionOptions, EventContext, Receiver, Sender } from "rhea";
import type { Authorizer, Claim } from "../auth/authorizer.js";
import type { Permission } from "../auth/credentials.js";
import { AMQP } from "../protocol.js";
import { guardFrames, MAX_AMQP_FRAME_BYTES } from "./frame-guard.js";

type Rhea = typeof import("rhea");
/** rhea once loaded (about 90 ms of module loading, so only when the first AMQP connection comes). */
let rheaModule: Rhea | undefined;
let rheaLoading: Promise<Rhea> | undefined;
const loadRhea = () => {
  rheaLoading ??= import("rhea").then((m) => {
    rheaModule = ((m as { default?: Rhea }).default ?? m) as Rhea;
    return rheaModule;
  });
  return rheaLoading;
};
/** rhea's encoders for message builders; only called while connections exist, so once rhea is loaded. */
export function rhea(): Rhea {
  if (!rheaModule) throw new Error("rhea is not loaded yet");
  return rheaModule;
}
/**
 * The idle timeout the hub advertises in its open (AMQP 1.0, 2.4.5): a client that sends nothing, not even
 * an empty frame, for twice this long is dropped. 240 s is Service Bus and Event Hubs' own.
 */
const IDLE_TIMEOUT_MS = 240_000;
/** At most this many links per connection (AMQP handle-max), so one client cannot pile up state. */
const MAX_LINKS = 1000;

/** Where one AMQP connection stands: who it proved to be through SASL PLAIN and put-token. */
export interface AmqpPeer {
  readonly id: string;
  readonly connection: Connection;
  /** Grants from `$cbs` put-token (and SASL PLAIN); a later token for the same audience replaces the earlier. */
  addClaim(claim: Claim): void;
  /** Whether an unexpired claim covers `address` with `permission`; names the policy or device that grants it. */
  authorize(
    address: string,
    permission: Permission,
  ): { ok: true; name: string; expiresAt: number } | { ok: false; reason: string };
  /**
   * Closes `link` with amqp:unauthorized-access once no claim grants `permission` on `address` any more: the
   * claim's token expired and no renewed one was put (the SDKs renew theirs well before).
   */
  keepAuthorized(link: Sender | Receiver, address: string, permission: Permission): void;
  /**
   * Whether the connection's unsent output is over MAX_UNSENT_BYTES: a client may grant any credit and then
   * not read, so senders stop there and go on at `whenDrained`.
   */
  backlogged(): boolean;
  whenDrained(resume: () => void): void;
}

/** Unsent bytes per connection before the hub's senders wait for the client to read. */
export const MAX_UNSENT_BYTES = 1024 * 1024;

export interface LinkContext {
  peer: AmqpPeer;
  /** The link's address without scheme and host (`hub/ConsumerGroups/$Default/Partitions/0`, `/messages/devicebound`). */
  address: string;
  /** What matched the route's pattern. */
  match: RegExpExecArray;
}

/**
 * One address's handlers. `outgoing`: the client attached a receiver (source = the address) and the hub sends
 * on `sender`. `incoming`: the client attached a sender (target = the address) and the hub receives. A handler
 * that refuses closes the link with an AMQP error (`refuse`).
 */
export interface AmqpRoute {
  outgoing?(sender: Sender, link: LinkContext): void;
  incoming?(receiver: Receiver, link: LinkContext): void;
}

export interface AmqpServer {
  /**
   * Registers handlers for the addresses `pattern` matches (the first registered match wins). This is the
   * routing table other features attach to: `$cbs` (cbs.ts), the Event Hubs-compatible endpoint
   * (events/endpoint.ts), and cloud-to-device (`/messages/devicebound`, feedback).
   */
  route(pattern: RegExp, handlers: AmqpRoute): void;
  /** Serves one decrypted stream (a TLS socket of the AMQP port). */
  handle(stream: Duplex): void;
  readonly connectionCount: number;
  close(): void;
}

/** Closes a link the hub refuses, with the condition the SDKs map (amqp:unauthorized-access, amqp:not-found...). */
export function refuse(link: Sender | Receiver, condition: string, description: string): void {
  link.close({ condition, description });
}

/** The address of a terminus without `amqps://host:port` (some clients send full URIs). */
export function addressPath(address: string | undefined): string {
  if (!address) return "";
  const m = /^amqps?:\/\/[^/]+(\/.*)?$/i.exec(address);
  return m ? (m[1] ?? "") : address;
}

/** Lower case with one leading slash and no trailing one, as claim paths are stored. */
function canonical(address: string): string {
  const a = address.toLowerCase().replace(/\/+$/, "");
  return a.startsWith("/") ? a : `/${a}`;
}

export function createAmqpServer(opts: {
  authorizer: Authorizer;
  log: (line: string) => void;
  /** The hub's container id in its open frame. */
  containerId: string;
  /**
   * The client's AMQP open arrived: the connection proved it speaks AMQP (the listener's gate then stops its
   * pending-connection deadline, as a CONNACK does for MQTT).
   */
  opened?: (stream: Duplex) => void;
}): AmqpServer {
  const { authorizer, log } = opts;
  const routes: Array<{ pattern: RegExp; handlers: AmqpRoute }> = [];
  const connections = new Set<Connection>();
  let nextId = 1;

  const findRoute = (address: string) => {
    for (const r of routes) {
      r.pattern.lastIndex = 0;
      const match = r.pattern.exec(address);
      if (match) return { handlers: r.handlers, match };
    }
    return undefined;
  };

  function handle(stream: Duplex): void {
    if (rheaModule) {
      serve(rheaModule, stream);
      return;
    }
    // Bytes that arrive meanwhile wait in the stream's buffer.
    loadRhea().then(
      (r) => (stream.destroyed ? undefined : serve(r, stream)),
      (error: unknown) => {
        log(`AMQP could not load rhea: ${(error as Error)?.message}`);
        stream.destroy();
      },
    );
  }

  function serve(rhea: Rhea, stream: Duplex): void {
    const id = `amqp-${nextId++}`;
    const claims = new Map<string, Claim>();
    const waiting = new Set<() => void>();
    /** keepAuthorized's timers of this connection's links, stopped when the connection closes. */
    const linkTimers = new Set<() => void>();
    const peer: AmqpPeer = {
      id,
      backlogged: () => stream.writableLength > MAX_UNSENT_BYTES,
      whenDrained(resume) {
        waiting.add(resume);
      },
      connection: undefined as unknown as Connection,
      addClaim(claim) {
        claims.set(`${claim.name}\n${claim.path}`, claim);
        // Bounded: a client renewing tokens for ever many audiences keeps only the newest 100.
        if (claims.size > 100) claims.delete(claims.keys().next().value as string);
      },
      authorize(address, permission) {
        const target = canonical(address);
        const now = Date.now();
        let reason = "no put-token on $cbs covers this address: send a SAS token for it first";
        let best: Claim | undefined;
        for (const claim of claims.values()) {
          if (claim.expiresAt <= now) {
            reason = "the token for this address has expired: put a new one on $cbs";
            continue;
          }
          if (claim.path !== "" && target !== claim.path && !target.startsWith(`${claim.path}/`)) continue;
          if (claim.permissions.includes(permission)) {
            if (!best || claim.expiresAt > best.expiresAt) best = claim;
            continue;
          }
          reason = `'${claim.name}' lacks the ${permission} permission needed here: use a policy that has it (for example service or iothubowner)`;
        }
        if (best) return { ok: true, name: best.name, expiresAt: best.expiresAt };
        return { ok: false, reason };
      },
      keepAuthorized(link, address, permission) {
        let timer: NodeJS.Timeout | undefined;
        const check = () => {
          const granted = peer.authorize(address, permission);
          if (!granted.ok) {
            log(`AMQP ${id} link to ${address} closed: ${granted.reason}`);
            refuse(link, AMQP.errors.unauthorized, granted.reason);
            return;
          }
          // Timers hold at most about 24.8 days; a later expiry is checked again then.
          timer = setTimeout(check, Math.min(granted.expiresAt - Date.now() + 10, 2 ** 31 - 1));
          timer.unref();
        };
        check();
        // One socket listener for all links (azure-iothub may attach hundreds of sender links at once: one per
        // send until its first link is open), so none piles up on the socket.
        const stop = () => {
          clearTimeout(timer);
          linkTimers.delete(stop);
        };
        link.once(link.is_sender() ? "sender_close" : "receiver_close", stop);
        linkTimers.add(stop);
      },
    };

    // One container per connection so SASL PLAIN's check knows whose claims it adds to.
    const container = rhea.create_container({ id: opts.containerId });
    container.sasl_server_mechanisms.enable_anonymous();
    // SASL PLAIN as the older IoT Hub SDKs use it: the password is a SAS token ("Communicate with your IoT hub
    // using the AMQP protocol", "Claims-based security": SASL PLAIN is also supported).
    container.sasl_server_mechanisms.enable_plain((_user: string, password: string) => {
      const claim = authorizer.claim(password);
      if (!claim.ok) {
        log(`AMQP ${id} SASL PLAIN refused: ${claim.reason}`);
        return false;
      }
      peer.addClaim(claim);
      return true;
    });
    const connection = container.create_connection({
      id,
      container_id: opts.containerId,
      idle_time_out: IDLE_TIMEOUT_MS,
      max_frame_size: MAX_AMQP_FRAME_BYTES,
      handle_max: MAX_LINKS - 1,
      channel_max: 99,
    } as unknown as ConnectionOptions);
    (peer as { connection: Connection }).connection = connection;

    stream.once("close", () => {
      connections.delete(connection);
      waiting.clear();
      for (const stop of [...linkTimers]) stop();
    });
    stream.on("drain", () => {
      const resumes = [...waiting];
      waiting.clear();
      for (const resume of resumes) resume();
    });
    stream.on("error", () => stream.destroy());

    const guarded = (where: string, fn: (ctx: EventContext) => void) => (ctx: EventContext) => {
      try {
        fn(ctx);
      } catch (error) {
        log(`AMQP ${id} ${where} failed: ${(error as Error)?.stack ?? error}`);
        const link = ctx.sender ?? ctx.receiver;
        if (link) refuse(link, AMQP.errors.internal, "hub error");
      }
    };
    connection.on("connection_open", () => {
      opts.opened?.(stream);
      log(`AMQP ${id} connected`);
    });
    connection.on(
      "sender_open",
      guarded("attach", (ctx) => {
        const sender = ctx.sender as Sender;
        const address = addressPath(sender.source?.address);
        const found = findRoute(address);
        if (!found?.handlers.outgoing)
          return refuse(sender, AMQP.errors.notFound, `no node at address '${address}'`);
        found.handlers.outgoing(sender, { peer, address, match: found.match });
      }),
    );
    connection.on(
      "receiver_open",
      guarded("attach", (ctx) => {
        const receiver = ctx.receiver as Receiver;
        const address = addressPath(receiver.target?.address);
        const found = findRoute(address);
        if (!found?.handlers.incoming)
          return refuse(receiver, AMQP.errors.notFound, `no node at address '${address}'`);
        found.handlers.incoming(receiver, { peer, address, match: found.match });
      }),
    );
    // Unheard, these would print to the console or end the process (rhea emits "error" on its container).
    const quiet = () => {};
    for (const event of ["sender_error", "receiver_error", "session_error", "sender_close", "receiver_close"])
      connection.on(event as ConnectionEvents, quiet);
    connection.on("protocol_error", (ctx: EventContext) => {
      log(`AMQP ${id} dropped: protocol error ${(ctx as unknown as Error)?.message ?? ""}`.trim());
      stream.destroy();
    });
    connection.on("error", (ctx: EventContext) => {
      log(`AMQP ${id} error: ${ctx.error ?? ""}`);
      stream.destroy();
    });
    container.on("error", quiet);
    connection.on("connection_error", quiet);
    connection.on("disconnected", () => {
      connections.delete(connection);
      log(`AMQP ${id} disconnected`);
    });

    guardFrames(stream, (bytes) => log(`AMQP ${id} dropped: a frame announced ${bytes} bytes`));
    connections.add(connection);
    connection.accept(stream as unknown as import("node:net").Socket);
  }

  return {
    route(pattern, handlers) {
      routes.push({ pattern, handlers });
    },
    handle,
    get connectionCount() {
      return connections.size;
    },
    close() {
      for (const c of connections) {
        try {
          c.close();
        } catch {}
      }
      connections.clear();
    },
  };
}
