import { readFileSync } from "node:fs";
import { connect as tlsConnect } from "node:tls";
import type { HubAddress } from "../support.js";

/** What one fuzz connection got back. */
export interface Exchange {
  received: Buffer;
  /** The hub closed the connection (rather than the client giving up after a quiet spell). */
  closedByHub: boolean;
  /** The TLS handshake failed or did not finish in time (the hub was not there, or stuck). */
  connectError?: string;
}

/**
 * Opens a TLS connection to the hub, writes `first`, waits for an answer (or a moment) and writes `second`,
 * then collects everything the hub sends until it closes, or until nothing has come for `idleMs`, or
 * `maxMs` has passed; the client then destroys the connection.
 */
export function exchange(
  hub: HubAddress,
  first: Buffer,
  second: Buffer,
  opts: {
    idleMs?: number;
    maxMs?: number;
    /** While this says the answer is incomplete, a quiet spell must last `patientIdleMs` (default 2 s). */
    settled?: (received: Buffer) => boolean;
    patientIdleMs?: number;
  } = {},
): Promise<Exchange> {
  const idleMs = opts.idleMs ?? 400;
  const maxMs = opts.maxMs ?? 5000;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    let connected = false;
    let idle: NodeJS.Timeout | undefined;
    const socket = tlsConnect({ host: "127.0.0.1", port: hub.port, ca: hub.caPem, servername: "localhost" });
    const finish = (closedByHub: boolean, connectError?: string) => {
      if (done) return;
      done = true;
      clearTimeout(idle);
      clearTimeout(hard);
      socket.destroy();
      resolve({ received: Buffer.concat(chunks), closedByHub, connectError });
    };
    // No TLS handshake by the deadline counts as not reaching the hub (a dead or stuck hub).
    const hard = setTimeout(() => finish(false, connected ? undefined : "no TLS handshake in time"), maxMs);
    const quiet = () => {
      clearTimeout(idle);
      const wait =
        opts.settled && !opts.settled(Buffer.concat(chunks)) ? (opts.patientIdleMs ?? 2000) : idleMs;
      idle = setTimeout(() => finish(false), wait);
    };
    socket.on("data", (d: Buffer) => {
      chunks.push(d);
      quiet();
    });
    socket.on("error", (e: NodeJS.ErrnoException) => {
      if (!connected) finish(false, e.code ?? e.message);
    });
    socket.on("close", () => finish(connected));
    socket.once("secureConnect", () => {
      connected = true;
      socket.write(first, () => {});
      if (second.length === 0) return quiet();
      // Wait for the CONNACK (any answer) or a short while, then send the rest.
      let sent = false;
      const sendRest = () => {
        if (sent || done) return;
        sent = true;
        socket.write(second, () => {});
        quiet();
      };
      socket.once("data", () => setImmediate(sendRest));
      setTimeout(sendRest, 300);
    });
  });
}

/** Resident set size of a process in KB, from /proc/<pid>/status (VmRSS). */
export function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}
