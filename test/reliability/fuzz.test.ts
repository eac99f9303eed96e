import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mqttPacket as P } from "../hub/mqtt-raw.js";
import { eventually } from "../hub/support.js";
import { runSeed } from "./fuzz/rng.js";
import {
  buildCase,
  type Finding,
  formatFinding,
  runStorm,
  type StormResult,
  type StormWorld,
  smallestPerKind,
  tagOf,
} from "./fuzz/storm.js";
import { startWellBehaved, type WellBehavedStats } from "./fuzz/well-behaved.js";
import { exchange, rssKb } from "./fuzz/wire.js";
import { deviceToken, type HubProcess, policy, rest, serviceToken, sleep, spawnHub } from "./support.js";

/**
 * Protocol fuzzing of the hub's one TLS port, against the built `local-hub` CLI as a child process (so a
 * crash shows as an exit). A seeded storm of MQTT packet sequences and HTTP requests, built valid and then
 * damaged, with SAS tokens damaged on both protocols; meanwhile the real device SDK (as the victim device)
 * and the real Registry keep doing twin round trips. Invariants, each its own test below:
 * - the hub process never exits (after an exit the hub is restarted on the same data and the storm goes on,
 *   and each case that was in flight is replayed alone to name the one that kills it);
 * - the hub never stops answering (a watchdog pings it; a stuck hub is killed, and replayed like a crash);
 * - the victim's twin (a unique marker string) never reaches a fuzz connection;
 * - the victim's twin and identity end exactly as its own clients made them;
 * - each fuzz connection's answer follows the protocol (no packet before CONNACK, nothing after a refused
 *   CONNACK, no bad login accepted, no 5xx, no 2xx without a valid token, no retained or foreign publish);
 * - no property ever appears on Object/Array/Function.prototype (a probe loaded into the hub watches);
 * - memory stays bounded (RSS from /proc and heap+external after a full GC, before vs after);
 * - the SDK clients are answered within a generous bound throughout;
 * - connections that stall before their first complete request are closed by the hub, and so is a device
 *   that pipelines twin GETs and never reads the answers; a back end that pipelines HTTPS requests and never
 *   reads runs alongside the storm (the memory and round-trip bounds above hold with it).
 *
 * FUZZ_SEED (number or "random"; default fixed), FUZZ_CASES (default 500), FUZZ_CONCURRENCY (default 6),
 * FUZZ_ONLY (case indices, comma-separated, to reproduce a finding), FUZZ_REPORT (a JSON file for the
 * findings). What is sent and checked is documented in docs/reliability.md.
 */

const SEED = runSeed();
const CASES = Number(process.env.FUZZ_CASES ?? 500);
const CONCURRENCY = Number(process.env.FUZZ_CONCURRENCY ?? 6);
const ONLY = process.env.FUZZ_ONLY === undefined ? undefined : process.env.FUZZ_ONLY.split(",").map(Number);
const PROBE = resolve(import.meta.dirname, "fuzz/probe.mjs");
const VICTIM = "fuzz-victim";
/** A device that pipelines twin GETs of its 28 KB twin and never reads (issue: unbounded reply buffering). */
const DEAF = "fuzz-deaf";
const DEAF_WHAT = "MQTT device pipelining twin GETs, never reading";
const DEAF_KEY = Buffer.from("fuzz-deaf".padEnd(32, "-")).toString("base64");
/** Generous: a shared 2-core machine under a fuzz storm. */
const ROUND_TRIP_BOUND_MS = 20_000;
/** Growth allowed across the storm. */
const RSS_BOUND_MB = 150;
/**
 * Heap + external after a full GC grew 1.8 to 2.6 MB across clean 600-case storms; a hub that kept RETAIN
 * publishes (checked by breaking the built hub on purpose) grew 17 MB over the same 600 cases.
 */
const HEAP_BOUND_MB = 8;
/**
 * A connection stalled before its first complete request (HTTP head, MQTT CONNECT) must be closed by the
 * hub within this long. A body trickled after a complete head is left to the HTTP request timeout.
 */
const STALL_BOUND_MS = 30_000;
/** After a crash the hub is restarted on the same data and the storm goes on, this many times at most. */
const MAX_RESTARTS = 5;

const key = (s: string) => Buffer.from(s.padEnd(32, "-").slice(0, 32)).toString("base64");

describe(`protocol fuzzing of the TLS port (seed ${SEED}, reproduce with FUZZ_SEED=${SEED})`, () => {
  let dataDir: string;
  let hub: HubProcess;
  /** Every hub process started, for the probe's output and cleanup. */
  const hubs: HubProcess[] = [];
  let world: StormWorld;
  let victimKey: string;
  const counts: Record<string, number> = {};
  const findings: Finding[] = [];
  let ran = 0;
  const spans: StormResult["spans"] = [];
  const wellBehaved: WellBehavedStats[] = [];
  let memoryBefore: { rssMb: number; heapMb: number };
  let memoryAfter: { rssMb: number; heapMb: number } | undefined;
  const crashes: Array<{ exit: string; suspects: number[]; culprits: number[]; output: string }> = [];
  let stalled: Array<{ what: string; closedAfterMs: number | undefined; openedAt: number }> = [];
  let stormMs = 0;
  let stormStartedAt = 0;
  let deafLastActivity = Number.NaN;
  let victimAfter: { twin: Record<string, unknown>; identity: Record<string, unknown> } | undefined;
  const marker = `VICTIM-${SEED}-${randomBytes(8).toString("hex")}`;

  async function startHubProcess(): Promise<HubProcess> {
    hub = await spawnHub(join(dataDir, "data"), join(dataDir, "hub.env"), {
      nodeArgs: ["--expose-gc", "--import", PROBE],
    });
    hubs.push(hub);
    if (world) {
      world.hub = hub;
      world.hostName = hub.hostName;
    }
    return hub;
  }

  const isAlive = (h: HubProcess) => h.child.exitCode === null && h.child.signalCode === null;

  /** heap + external after a full GC, as the probe in the hub reports it on SIGUSR2, and RSS from /proc. */
  async function probeMemory(): Promise<{ rssMb: number; heapMb: number }> {
    const before = hub.output().length;
    process.kill(hub.pid, "SIGUSR2");
    const line = await eventually(
      () => /\[fuzz-probe\] memory (\{.*\})/.exec(hub.output().slice(before))?.[1],
      10_000,
    );
    const m = JSON.parse(line) as { heapUsed: number; external: number };
    return { rssMb: rssKb(hub.pid) / 1024, heapMb: (m.heapUsed + m.external) / 1024 / 1024 };
  }

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "hub-fuzz-"));
    await startHubProcess();
    const owner = serviceToken(hub);
    const register = async (id: string, k: string) => {
      const res = await rest(hub, "PUT", `/devices/${id}`, {
        auth: owner,
        body: JSON.stringify({
          deviceId: id,
          authentication: { symmetricKey: { primaryKey: k, secondaryKey: key(`${id}-2`) } },
        }),
      });
      expect(res.status, res.body).toBe(200);
    };
    const laneDevices = Array.from({ length: CONCURRENCY }, (_, i) => ({
      id: `fuzz-lane-${i}`,
      key: key(`fuzz-lane-${i}`),
    }));
    for (const d of laneDevices) await register(d.id, d.key);
    victimKey = randomBytes(32).toString("base64");
    await register(VICTIM, victimKey);
    world = {
      hub,
      seed: SEED,
      marker: Buffer.from(marker),
      hostName: hub.hostName,
      ownerKey: policy("iothubowner").primaryKey,
      victimId: VICTIM,
      laneDevices,
      scratchIds: ["fuzz-scratch-0", "fuzz-scratch-1", "fuzz-scratch-2"],
    };
    for (const id of world.scratchIds) await register(id, key(id));
    await register(DEAF, DEAF_KEY);
    // Seven 4 KB strings: every twin answer to the deaf device is about 28 KB.
    const big = Object.fromEntries(Array.from({ length: 7 }, (_, i) => [`p${i}`, "x".repeat(4000)]));
    const patched = await rest(hub, "PATCH", `/twins/${DEAF}`, {
      auth: owner,
      body: JSON.stringify({ properties: { desired: big } }),
      headers: { "if-match": "*" },
    });
    expect(patched.status, patched.body).toBe(200);
  }, 60_000);

  afterAll(async () => {
    for (const h of hubs) await h.kill("SIGKILL");
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  function startClients() {
    return startWellBehaved({
      serviceConnectionString: hub.env.IOTHUB_CONNECTION_STRING,
      deviceConnectionString: `HostName=${hub.hostName};DeviceId=${VICTIM};SharedAccessKey=${victimKey}`,
      caPem: hub.caPem,
      victimId: VICTIM,
      marker,
      boundMs: ROUND_TRIP_BOUND_MS,
    });
  }

  /** Findings of cases that ended after `cutOff` (a crash) are dropped: the crash cut them short. */
  function merge(result: StormResult, cutOff = Number.POSITIVE_INFINITY) {
    for (const [k, v] of Object.entries(result.counts)) counts[k] = (counts[k] ?? 0) + v;
    findings.push(...result.findings.filter((f) => f.endedAt < cutOff));
    spans.push(...result.spans);
    ran += result.ran;
  }

  /** Whether the hub answers a plain HTTPS request within `ms` (an event loop that is not stuck). */
  async function responsive(target: HubProcess, ms: number): Promise<boolean> {
    const x = await exchange(
      target,
      Buffer.from(
        "GET /statistics/devices?api-version=2021-04-12 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      ),
      Buffer.alloc(0),
      { idleMs: ms, maxMs: ms },
    );
    return x.received.subarray(0, 9).toString("latin1") === "HTTP/1.1 ";
  }

  /**
   * Replays each suspect alone against a live hub; returns those that make it exit or stop answering
   * (restarting it after).
   */
  async function culpritsAmong(suspects: number[]): Promise<number[]> {
    const culprits: number[] = [];
    for (const index of suspects.slice(0, 24)) {
      const target = hub;
      await runStorm(world, [index], { alive: () => isAlive(target) });
      await sleep(300);
      if (!isAlive(target) || !(await responsive(target, 10_000))) {
        culprits.push(index);
        await target.kill("SIGKILL");
        await startHubProcess();
      }
    }
    return culprits;
  }

  /**
   * Pings the hub every few seconds during a round; two pings unanswered for 10 s in a row mean its event
   * loop is stuck, which is a finding like a crash: the watchdog kills it so the storm can go on.
   */
  function watchdog(target: HubProcess, onStuck: (since: number) => void) {
    let stopped = false;
    const done = (async () => {
      let lastOk = Date.now();
      let misses = 0;
      while (!stopped && isAlive(target)) {
        const at = Date.now();
        if (await responsive(target, 10_000)) {
          lastOk = at;
          misses = 0;
        } else if (++misses >= 2 && isAlive(target) && !stopped) {
          onStuck(lastOk);
          await target.kill("SIGKILL");
          return;
        }
        await sleep(2000);
      }
    })();
    return async () => {
      stopped = true;
      await done;
    };
  }

  it("runs the storm while the SDK clients keep working", async () => {
    let remaining = ONLY ?? Array.from({ length: CASES }, (_, i) => i);
    const retried = new Set<number>();
    const started = Date.now();
    stormStartedAt = started;
    // Memory and stalled connections are judged on the last hub process (after the last restart, if any).
    let stallTimes = startStalledConnections(hub);
    let stallHub = hub;
    for (let restarts = 0; remaining.length > 0; restarts++) {
      const target = hub;
      if (stallHub !== target) {
        stallTimes = startStalledConnections(target);
        stallHub = target;
      }
      const clients = await startClients();
      memoryBefore = await probeMemory();
      const startedCases = new Set<number>();
      const inFlight = new Set<number>();
      // A dying hub closes its connections before its exit is seen: the cases that ended in the last
      // moments are suspects too.
      const endedAt = new Map<number, number>();
      let suspects: number[] | undefined;
      let exitSeenAt = Number.POSITIVE_INFINITY;
      let stuckSince: number | undefined;
      const startedAt = new Map<number, number>();
      const stopWatchdog = watchdog(target, (since) => {
        stuckSince = since;
      });
      void target.exited.then(() => {
        exitSeenAt = Date.now();
        const recent = [...endedAt]
          .filter(([, at]) => exitSeenAt - at < 1000)
          .sort((a, b) => b[1] - a[1])
          .map(([i]) => i);
        suspects = [...new Set([...inFlight, ...recent])];
      });
      const result = await runStorm(world, remaining, {
        alive: () => isAlive(target),
        onCaseStart: (i) => {
          startedAt.set(i, Date.now());
          startedCases.add(i);
          inFlight.add(i);
        },
        onCaseDone: (i, reached) => {
          inFlight.delete(i);
          if (reached) endedAt.set(i, Date.now());
          else startedAt.delete(i);
        },
      });
      // A dying hub closes every connection: findings of cases that ended around the exit are its echo.
      // A stuck hub answers nothing from the moment it got stuck (after its last answered ping, at the latest).
      merge(
        result,
        isAlive(target) && stuckSince === undefined
          ? Number.POSITIVE_INFINITY
          : (stuckSince ?? Math.min(exitSeenAt, Date.now()) - 1000),
      );
      // Cases that never reached the hub run again on the next one (once).
      const again = result.unreached.filter((i) => !retried.has(i));
      for (const i of again) retried.add(i);
      remaining = [...again, ...remaining.filter((i) => !startedCases.has(i))];
      await stopWatchdog();
      const stats = await clients.stop();
      if (isAlive(target)) {
        wellBehaved.push(stats);
        break;
      }
      // The clients' failures after a crash are its consequence, not separate findings.
      await stallTimes(false);
      const exit = await target.exited;
      const output = target.output().split("\n").slice(-30).join("\n");
      await startHubProcess();
      // A stuck hub: the suspects are the cases that started from shortly before its last answer on.
      const since = stuckSince;
      const crash = {
        exit:
          since === undefined
            ? JSON.stringify(exit)
            : `stopped answering (event loop stuck for 20 s; killed by the watchdog)`,
        suspects:
          since === undefined
            ? (suspects ?? [])
            : [...startedAt]
                .filter(([, at]) => at >= since - 1000)
                // The cases that reached the hub last before it got stuck come first.
                .sort((a, b) => b[1] - a[1])
                .map(([i]) => i),
        culprits: [] as number[],
        output,
      };
      crashes.push(crash);
      crash.culprits = await culpritsAmong(crash.suspects);
      if (restarts >= MAX_RESTARTS) break;
    }
    stormMs = Date.now() - started;
    // If the last round ended in a crash, the stalled connections are judged on the restarted hub.
    if (stallHub !== hub) stallTimes = startStalledConnections(hub);
    stalled = await stallTimes(true);
    if (isAlive(hub)) memoryAfter = await probeMemory();
    if (isAlive(hub)) {
      const owner = serviceToken(hub);
      victimAfter = {
        twin: (await rest(hub, "GET", `/twins/${VICTIM}`, { auth: owner })).json(),
        identity: (await rest(hub, "GET", `/devices/${VICTIM}`, { auth: owner })).json(),
      };
    }
    console.log(summary());
    if (isAlive(hub)) {
      // The deaf device was cut off after it had logged in (not refused at CONNECT): it has been active.
      const twin = (await rest(hub, "GET", `/twins/${DEAF}`, { auth: serviceToken(hub) })).json<{
        lastActivityTime: string;
      }>();
      deafLastActivity = Date.parse(twin.lastActivityTime);
      // A client that reads nothing may never see the hub close its connection (its TCP stack is not asked);
      // the hub's own record of the disconnection says when it was cut off.
      const deaf = stalled.find((x) => x.what === DEAF_WHAT);
      const identity = (await rest(hub, "GET", `/devices/${DEAF}`, { auth: serviceToken(hub) })).json<{
        connectionState: string;
        connectionStateUpdatedTime: string;
      }>();
      if (deaf && deaf.closedAfterMs === undefined && identity.connectionState === "Disconnected")
        deaf.closedAfterMs = Date.parse(identity.connectionStateUpdatedTime) - deaf.openedAt;
    }
    console.log(
      `[reliability] fuzz, connections that stall or never read: ${stalled.map((x) => `${x.what}: closed after ${x.closedAfterMs ?? "never"} ms`).join("; ")}`,
    );
    if (process.env.FUZZ_REPORT) writeReport(process.env.FUZZ_REPORT);
    expect(ran).toBeGreaterThan(0);
  }, 600_000);

  function summary(): string {
    const perCategory = Object.entries(counts)
      .sort()
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    const device = wellBehaved.reduce((s, w) => s + w.deviceRounds, 0);
    const service = wellBehaved.reduce((s, w) => s + w.serviceRounds, 0);
    const slowest = Math.max(0, ...wellBehaved.flatMap((w) => [w.slowest.device, w.slowest.service]));
    return (
      `[reliability] fuzz seed=${SEED}: ${ran} cases in ${(stormMs / 1000).toFixed(1)} s (${perCategory}); ` +
      `${crashes.length} crashes, ${findings.length} violations of ${new Set(findings.map((f) => f.kind)).size} kinds, ` +
      `${pollutionLines().length} prototype pollutions; SDK round trips: device ${device}, service ${service}, ` +
      `slowest ${slowest} ms; memory ${memoryBefore?.rssMb.toFixed(0)} -> ${memoryAfter?.rssMb.toFixed(0) ?? "?"} MB RSS, ` +
      `${memoryBefore?.heapMb.toFixed(1)} -> ${memoryAfter?.heapMb.toFixed(1) ?? "?"} MB heap+external after GC`
    );
  }

  /** Connections that stop mid-way through their first request; resolves with when the hub closed each. */
  function startStalledConnections(target: HubProcess) {
    const opened = Date.now();
    const kinds: Array<{ what: string; bytes: Buffer }> = [
      {
        what: "HTTP headers cut short",
        bytes: Buffer.from(`PATCH /twins/${VICTIM} HTTP/1.1\r\nHost: x\r\nAuthor`),
      },
      { what: "MQTT CONNECT cut short", bytes: Buffer.from([0x10, 0x40, 0x00, 0x04, 0x4d]) },
      { what: "nothing after the TLS handshake", bytes: Buffer.alloc(0) },
    ];
    const results: Array<{ r: { what: string; closedAfterMs: number | undefined }; s: TLSSocket }> =
      kinds.map(({ what, bytes }) => {
        const r = { what, closedAfterMs: undefined as number | undefined };
        const s = tlsConnect({
          host: "127.0.0.1",
          port: target.port,
          ca: target.caPem,
          servername: "localhost",
        });
        s.on("error", () => {});
        s.once("secureConnect", () => bytes.length && s.write(bytes));
        s.on("close", () => {
          r.closedAfterMs ??= Date.now() - opened;
        });
        return { r, s };
      });
    // Clients that send and never read (sockets paused): the deaf device must be cut off (the hub disconnects
    // a device once 1 MiB of answers wait for it); the HTTPS pipeliner is load the hub must stop reading.
    const deaf = nonReader(target, opened, DEAF_WHAT, () => ({
      first: Buffer.concat([
        P.connect(
          DEAF,
          `${target.hostName}/${DEAF}/?api-version=2021-04-12`,
          deviceToken(target, DEAF, DEAF_KEY),
        ),
        P.subscribe(1, [["$iothub/twin/res/#", 0]]),
      ]),
      repeat: Buffer.concat(
        Array.from({ length: 1000 }, (_, i) => P.publish(`$iothub/twin/GET/?$rid=${i}`, "")),
      ),
    }));
    results.push(deaf);
    const pipeliner = nonReader(target, opened, "HTTPS client pipelining requests, never reading", () => ({
      first: Buffer.alloc(0),
      repeat: Buffer.from(
        `GET /twins/${DEAF}?api-version=2021-04-12 HTTP/1.1\r\nHost: x\r\nAuthorization: ${serviceToken(target)}\r\n\r\n`.repeat(
          500,
        ),
      ),
    }));
    return async (wait: boolean) => {
      pipeliner.s.destroy();
      if (wait)
        await eventually(
          () => (results.every(({ r }) => r.closedAfterMs !== undefined) ? true : undefined),
          Math.max(0, STALL_BOUND_MS - (Date.now() - opened)),
        ).catch(() => {});
      for (const { s } of results) s.destroy();
      return results.map(({ r }) => ({ ...r, openedAt: opened }));
    };
  }

  /**
   * A client that writes `first`, then `repeat` up to 100 times (waiting for the socket to drain, so the
   * kernel's buffers hold what the hub does not read) and never reads anything.
   */
  function nonReader(
    target: HubProcess,
    opened: number,
    what: string,
    bytes: () => { first: Buffer; repeat: Buffer },
  ) {
    const r = { what, closedAfterMs: undefined as number | undefined };
    const s = tlsConnect({ host: "127.0.0.1", port: target.port, ca: target.caPem, servername: "localhost" });
    s.pause();
    s.on("error", () => {});
    s.on("close", () => {
      r.closedAfterMs ??= Date.now() - opened;
    });
    s.once("secureConnect", async () => {
      const { first, repeat } = bytes();
      if (first.length) s.write(first);
      for (let i = 0; i < 100 && !s.destroyed; i++) {
        if (!s.write(repeat)) await Promise.race([new Promise((done) => s.once("drain", done)), sleep(2000)]);
      }
    });
    return { r, s };
  }

  /** What case `index` sends, in words, with its bytes. */
  function describeCase(index: number): string {
    const { protocol, c } = buildCase(world, index);
    const bytes = protocol === "mqtt" ? Buffer.concat([c.first, c.second]) : c.bytes;
    const text = bytes
      .subarray(0, 400)
      .toString("latin1")
      .replace(/[^\x20-\x7e]/g, ".");
    return `[${c.category}] ${c.description.join(" | ").slice(0, 400)}\n    bytes: ${text}`;
  }

  function findingsOf(kinds: (kind: string) => boolean): Finding[] {
    return findings.filter((f) => kinds(f.kind));
  }

  function report(list: Finding[]): string {
    return smallestPerKind(list)
      .map((f) => formatFinding(f, SEED, list.filter((g) => g.kind === f.kind).length))
      .join("\n");
  }

  function writeReport(file: string) {
    writeFileSync(
      file,
      JSON.stringify(
        {
          seed: SEED,
          cases: ran,
          counts,
          crashes: crashes.map((c) => ({
            ...c,
            culprits: c.culprits.map((i) => `${i}: ${describeCase(i)}`),
          })),
          pollution: namedPollution(),
          memoryBefore,
          memoryAfter,
          wellBehaved,
          stalled,
          findings: smallestPerKind(findings).map((f) => ({
            kind: f.kind,
            count: findings.filter((g) => g.kind === f.kind).length,
            caseIndex: f.caseIndex,
            category: f.category,
            detail: f.detail,
            description: f.description,
            inputHex: f.input.toString("hex"),
          })),
        },
        null,
        2,
      ),
    );
  }

  /** Each pollution line with the case that planted it, or the cases running when the probe saw it. */
  function namedPollution(): string[] {
    return pollutionLines().map((line) => {
      // The planted value names its case (tag fuzz-<seed>-<i>) when it survives; else the cases that were
      // running when the probe saw it, those sending a pollution shape first.
      const tag = /fuzz-\d+-(\d+)/.exec(line)?.[1];
      if (tag) return `${line}\n  planted by case ${tag}`;
      const at = Number(/seen at (\d+)/.exec(line)?.[1]);
      const around = spans
        .filter((s) => s.start <= at && s.end >= at - 150)
        .sort((a, b) => Number(b.polluting) - Number(a.polluting))
        .map((s) => `${s.index}${s.polluting ? " (pollution shape)" : ""}`);
      const shaped = spans.filter((s) => s.start <= at && s.end >= at - 150 && s.polluting).slice(0, 3);
      return (
        `${line}\n  cases running then: ${around.join(", ") || "(none)"}` +
        shaped.map((s) => `\n  case ${s.index}: ${describeCase(s.index)}`).join("")
      );
    });
  }

  function pollutionLines(): string[] {
    return hubs.flatMap((h) =>
      h
        .output()
        .split("\n")
        .filter((l) => l.startsWith("[fuzz-probe] polluted")),
    );
  }

  it("the hub process never exits", () => {
    expect(ran).toBeGreaterThan(0);
    const text = crashes
      .map(
        (c) =>
          `- exit ${c.exit}; cases in flight ${c.suspects.join(", ")}; replayed alone, these killed it: ` +
          `${c.culprits.join(", ") || "(none alone)"} (FUZZ_SEED=${SEED} FUZZ_ONLY=<case>)\n` +
          c.culprits.map((i) => `  case ${i}: ${describeCase(i)}\n`).join("") +
          c.output,
      )
      .join("\n");
    expect(crashes.length, text).toBe(0);
  });

  it("never answers a fuzz connection with the victim's twin", () => {
    const leaks = findingsOf((k) => k.startsWith("leak"));
    expect(leaks.length, report(leaks)).toBe(0);
  });

  it("answers every fuzz connection by the protocol's rules (CONNACK first, refusals, no 5xx, no 2xx without a token)", () => {
    const bad = findingsOf((k) => !k.startsWith("leak"));
    expect(bad.length, report(bad)).toBe(0);
  });

  it("leaves the victim's twin and identity exactly as its own clients made them", () => {
    expect(victimAfter, "the hub was not alive after the storm").toBeDefined();
    if (!victimAfter) return;
    const { twin, identity } = victimAfter as {
      twin: { tags?: object; properties: { desired: object; reported: object } };
      identity: { status: string; authentication: { symmetricKey: { primaryKey: string } } };
    };
    const own = (o: object) =>
      Object.keys(o)
        .filter((k) => !k.startsWith("$"))
        .sort();
    expect(own(twin.tags ?? {})).toEqual([]);
    expect(own(twin.properties.desired)).toEqual(["marker", "round"]);
    expect(own(twin.properties.reported)).toEqual(["marker", "round"]);
    expect(identity.status).toBe("enabled");
    expect(identity.authentication.symmetricKey.primaryKey).toBe(victimKey);
  });

  it("never lets a payload put a property on a built-in prototype", () => {
    const lines = pollutionLines();
    const named = namedPollution();
    expect(
      lines,
      `${named.join("\n")}\nreproduce one with FUZZ_SEED=${SEED} FUZZ_ONLY=<case> (${tagOf(SEED, 0)} is case 0)`,
    ).toEqual([]);
  });

  it(`keeps memory bounded (RSS grows < ${RSS_BOUND_MB} MB, heap+external after GC < ${HEAP_BOUND_MB} MB)`, () => {
    expect(memoryAfter, "not measured: the hub was not alive after the storm").toBeDefined();
    if (!memoryAfter) return;
    expect(memoryAfter.rssMb - memoryBefore.rssMb).toBeLessThan(RSS_BOUND_MB);
    expect(memoryAfter.heapMb - memoryBefore.heapMb).toBeLessThan(HEAP_BOUND_MB);
  });

  it(`keeps answering the SDK clients within ${ROUND_TRIP_BOUND_MS / 1000} s throughout`, () => {
    expect(wellBehaved.length, "the storm never ran to its end on one hub").toBeGreaterThan(0);
    for (const w of wellBehaved) {
      expect(w.failures).toEqual([]);
      expect(w.deviceDisconnects, "the victim's own connection was dropped").toBe(0);
    }
    expect(wellBehaved.reduce((s, w) => s + w.deviceRounds, 0)).toBeGreaterThanOrEqual(3);
    expect(wellBehaved.reduce((s, w) => s + w.serviceRounds, 0)).toBeGreaterThanOrEqual(3);
  });

  it(`closes connections that stall in their first request, and a device that never reads, within ${STALL_BOUND_MS / 1000} s`, () => {
    expect(stalled.map((s) => s.what)).toContain(DEAF_WHAT);
    expect(deafLastActivity, "the deaf device never logged in").toBeGreaterThanOrEqual(stormStartedAt - 1000);
    const open = stalled.filter((s) => s.closedAfterMs === undefined || s.closedAfterMs > STALL_BOUND_MS);
    expect(
      open.map((s) => s.what),
      JSON.stringify(stalled),
    ).toEqual([]);
  });
});
