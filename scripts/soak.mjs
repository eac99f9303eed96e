#!/usr/bin/env node
// Soak test of the local hub: `npm run soak [-- --duration 10m --devices 1000 --json]`.
//
// Starts the built hub (dist/cli/local-hub.js) in a child process, registers N devices, keeps them all
// connected over MQTT (mqtt.js with SAS tokens, as azure-iot-device-mqtt connects) for the whole run while
// they report properties, the service patches desired properties (each must reach its device), and devices
// drop and reconnect (each then re-reads its twin and checks that nothing it was told was acknowledged went
// missing). The hub's resident memory (VmRSS) and open file descriptors are read from /proc/<pid> once the
// load is warm and again at the end: both must grow less than 10 %. Every failed operation is reported and
// must be zero. Exit code 0 when both hold, 1 otherwise. Plain JavaScript so it runs from a fresh clone after
// `npm run build` (which `npm run soak` does first).

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { Agent, request } from "node:https";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import mqtt from "mqtt";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const HUB_BIN = join(ROOT, "dist/cli/local-hub.js");
const { makeToken } = await import(join(ROOT, "dist/hub/auth/sas.js")).catch(() => {
  console.error("soak: dist/ is missing or stale; run `npm run build` first (`npm run soak` does).");
  process.exit(2);
});

// ---------------------------------------------------------------------------------------------- options
const USAGE = `usage: node scripts/soak.mjs [options]
  --duration <t>        how long to keep the load on: 90, 90s, 10m, 1h (default 10m)
  --devices <n>         simulated devices, all connected at once (default 1000)
  --patch-every <s>     each device reports properties every this many seconds (default 10)
  --desired-rate <n>    desired-property patches from the service per second (default 5)
  --reconnect-rate <n>  device disconnects and reconnects per second (default 2)
  --max-growth <pct>    allowed growth of RSS and open handles, start to end (default 10)
  --json                print the report as one JSON line on stdout (progress goes to stderr)`;

function parseArgs(argv) {
  const o = {
    duration: 600,
    devices: 1000,
    patchEvery: 10,
    desiredRate: 5,
    reconnectRate: 2,
    maxGrowth: 10,
    json: false,
  };
  const num = (name, v, min) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) fail(`${name} must be a number of at least ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--duration") o.duration = parseDuration(next());
    else if (a === "--devices") o.devices = Math.floor(num(a, next(), 1));
    else if (a === "--patch-every") o.patchEvery = num(a, next(), 0.1);
    else if (a === "--desired-rate") o.desiredRate = num(a, next(), 0);
    else if (a === "--reconnect-rate") o.reconnectRate = num(a, next(), 0);
    else if (a === "--max-growth") o.maxGrowth = num(a, next(), 0);
    else if (a === "--json") o.json = true;
    else if (a === "--help" || a === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else fail(`unknown option ${a}`);
  }
  return o;
}

function parseDuration(text) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
  if (!m) fail(`--duration: cannot read "${text}" (use 90, 90s, 10m or 1h)`);
  const factor = { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] ?? "s"];
  const seconds = Number(m[1]) * factor;
  if (seconds < 5) fail("--duration must be at least 5 seconds");
  return seconds;
}

function fail(message) {
  console.error(`soak: ${message}\n${USAGE}`);
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
const progress = (line) => process.stderr.write(`[soak] ${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ACK_TIMEOUT_MS = 30_000;

// ------------------------------------------------------------------------------------------------- hub
const work = mkdtempSync(join(tmpdir(), "soak-"));
const envFile = join(work, ".env");
const hubProc = spawn(
  process.execPath,
  [HUB_BIN, "--port", "0", "--data-dir", join(work, "data"), "--write-env", envFile, "--quiet"],
  { stdio: ["ignore", "pipe", "pipe"] },
);
let hubOutput = "";
hubProc.stdout.on("data", (d) => (hubOutput += d));
hubProc.stderr.on("data", (d) => (hubOutput += d));
let hubExited = false;
const hubExit = new Promise((r) =>
  hubProc.once("exit", (code, signal) => {
    hubExited = true;
    r({ code, signal });
  }),
);

const failures = [];
const failuresByKind = {};
function failure(kind, detail) {
  failuresByKind[kind] = (failuresByKind[kind] ?? 0) + 1;
  if (failures.length < 50) failures.push(`${kind}: ${detail}`);
}
hubExit.then(({ code, signal }) => {
  if (!stopping) failure("hub exited", `code ${code} signal ${signal}\n${hubOutput.slice(-2000)}`);
});

async function waitForEnv() {
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    if (hubExited) throw new Error(`the hub exited before listening:\n${hubOutput}`);
    if (existsSync(envFile) && readFileSync(envFile, "utf8").includes("IOTHUB_CA_FILE")) {
      const env = Object.fromEntries(
        readFileSync(envFile, "utf8")
          .split("\n")
          .filter((l) => l.includes("="))
          .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
      );
      return env;
    }
    await sleep(50);
  }
  throw new Error("the hub did not start within 30 s");
}

/** The hub's resident memory (bytes) and open file descriptors, read from /proc. */
function measure() {
  const status = readFileSync(`/proc/${hubProc.pid}/status`, "utf8");
  const rss = Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1] ?? Number.NaN) * 1024;
  const fds = readdirSync(`/proc/${hubProc.pid}/fd`).length;
  return { at: Date.now(), rss, fds };
}

// ------------------------------------------------------------------------------------------------ REST
let hub;
let agent;
function rest(method, path, body) {
  return new Promise((resolvePromise, reject) => {
    const req = request(
      {
        host: "localhost",
        port: hub.port,
        method,
        path: `${path}?api-version=2021-04-12`,
        agent,
        headers: {
          authorization: hub.token(),
          ...(body === undefined ? {} : { "content-type": "application/json; charset=utf-8" }),
          ...(method === "PATCH" ? { "if-match": "*" } : {}),
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (text += d));
        res.on("end", () => resolvePromise({ status: res.statusCode, body: text }));
      },
    );
    req.setTimeout(ACK_TIMEOUT_MS, () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------- devices
const counts = {
  reportedSent: 0,
  reportedAcked: 0,
  desiredSent: 0,
  desiredDelivered: 0,
  reconnects: 0,
  twinChecks: 0,
};
let stopping = false;

class Device {
  constructor(id) {
    this.id = id;
    this.key = randomBytes(32).toString("base64");
    this.client = undefined;
    this.busy = false; // reconnecting
    this.seq = 0; // last reported seq sent
    this.acked = 0; // last reported seq acknowledged
    this.ackedVersion = 0; // reported $version of that acknowledgement
    this.pending = new Map(); // rid -> { resolve, timer }
    this.desiredSeq = 0; // last desired seq the service set
    this.desiredWaiting = new Map(); // desired seq -> timer
    this.rid = 0;
  }

  idle() {
    return !this.busy && this.client?.connected && this.pending.size === 0 && this.desiredWaiting.size === 0;
  }

  async connect() {
    const client = mqtt.connect(`mqtts://localhost:${hub.port}`, {
      clientId: this.id,
      username: `${hub.hostName}/${this.id}/?api-version=2021-04-12`,
      password: makeToken(
        this.key,
        `${hub.hostName}/devices/${this.id}`,
        Math.floor(Date.now() / 1000) + 3600,
      ),
      ca: hub.ca,
      reconnectPeriod: 0,
      connectTimeout: ACK_TIMEOUT_MS,
      protocolVersion: 4,
      keepalive: 120,
    });
    await new Promise((resolvePromise, reject) => {
      client.once("connect", resolvePromise);
      client.once("error", reject);
      client.once("close", () => reject(new Error("closed while connecting")));
    });
    client.removeAllListeners("error");
    client.on("error", () => {});
    client.on("message", (topic, payload) => this.onMessage(topic, payload));
    client.once("close", () => {
      if (this.client !== client) return;
      for (const p of this.pending.values()) p.resolve(undefined);
      if (!this.busy && !stopping) failure("unexpected disconnect", this.id);
    });
    this.client = client;
    await new Promise((resolvePromise, reject) =>
      client.subscribe(
        ["$iothub/twin/res/#", "$iothub/twin/PATCH/properties/desired/#"],
        { qos: 0 },
        (err, granted) =>
          err || granted.some((g) => g.qos === 128)
            ? reject(err ?? new Error("subscription refused"))
            : resolvePromise(),
      ),
    );
  }

  onMessage(topic, payload) {
    const res = /^\$iothub\/twin\/res\/(\d+)\/\?\$rid=([^&]+)(?:&\$version=(\d+))?/.exec(topic);
    if (res) {
      const p = this.pending.get(res[2]);
      if (p) p.resolve({ status: Number(res[1]), version: Number(res[3]), body: payload.toString("utf8") });
      return;
    }
    if (topic.startsWith("$iothub/twin/PATCH/properties/desired/")) {
      const patch = JSON.parse(payload.toString("utf8"));
      const timer = this.desiredWaiting.get(patch.seq);
      if (timer !== undefined) {
        clearTimeout(timer);
        this.desiredWaiting.delete(patch.seq);
        counts.desiredDelivered++;
      }
    }
  }

  /** Publishes a twin request and resolves with the hub's answer (undefined on disconnect or timeout). */
  request(topicPrefix, payload) {
    const rid = String(++this.rid);
    return new Promise((resolvePromise) => {
      const timer = setTimeout(() => done(undefined), ACK_TIMEOUT_MS);
      const done = (answer) => {
        clearTimeout(timer);
        this.pending.delete(rid);
        resolvePromise(answer);
      };
      this.pending.set(rid, { resolve: done, timer });
      this.client.publish(`${topicPrefix}?$rid=${rid}`, payload);
    });
  }

  async report() {
    const seq = ++this.seq;
    counts.reportedSent++;
    const ack = await this.request(
      "$iothub/twin/PATCH/properties/reported/",
      JSON.stringify({ seq, connectivity: { type: "cellular" } }),
    );
    if (ack?.status !== 204) {
      failure(
        "reported patch",
        `${this.id} seq ${seq}: ${ack ? `status ${ack.status}` : "no acknowledgement"}`,
      );
      return;
    }
    if (ack.version <= this.ackedVersion)
      failure("reported $version went backwards", `${this.id}: ${ack.version} after ${this.ackedVersion}`);
    this.acked = seq;
    this.ackedVersion = ack.version;
    counts.reportedAcked++;
  }

  async desired() {
    const seq = ++this.desiredSeq;
    counts.desiredSent++;
    this.desiredWaiting.set(
      seq,
      setTimeout(() => {
        this.desiredWaiting.delete(seq);
        failure("desired update not delivered", `${this.id} seq ${seq}`);
      }, ACK_TIMEOUT_MS),
    );
    try {
      const res = await rest("PATCH", `/twins/${this.id}`, { properties: { desired: { seq } } });
      if (res.status !== 200) throw new Error(`status ${res.status}: ${res.body.slice(0, 200)}`);
    } catch (error) {
      clearTimeout(this.desiredWaiting.get(seq));
      this.desiredWaiting.delete(seq);
      failure("desired patch", `${this.id} seq ${seq}: ${error.message}`);
    }
  }

  /** Drops the connection (gracefully or abruptly), connects again and checks the twin kept everything. */
  async reconnect() {
    this.busy = true;
    try {
      const old = this.client;
      const closed = new Promise((r) => old.once("close", r));
      if (Math.random() < 0.5) old.end();
      else old.stream.destroy();
      await closed;
      await this.connect();
      counts.reconnects++;
      const answer = await this.request("$iothub/twin/GET/", "");
      if (answer?.status !== 200) {
        failure(
          "twin read after reconnect",
          `${this.id}: ${answer ? `status ${answer.status}` : "no answer"}`,
        );
        return;
      }
      const twin = JSON.parse(answer.body);
      counts.twinChecks++;
      if (
        (twin.reported.seq ?? 0) !== this.acked ||
        (this.acked > 0 && twin.reported.$version !== this.ackedVersion)
      )
        failure(
          "reported state after reconnect",
          `${this.id}: seq ${twin.reported.seq} $version ${twin.reported.$version}, expected ${this.acked} / ${this.ackedVersion}`,
        );
      if ((twin.desired.seq ?? 0) !== this.desiredSeq)
        failure(
          "desired state after reconnect",
          `${this.id}: seq ${twin.desired.seq}, expected ${this.desiredSeq}`,
        );
    } catch (error) {
      failure("reconnect", `${this.id}: ${error.message}`);
    } finally {
      this.busy = false;
    }
  }
}

async function inBatches(items, width, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

// ------------------------------------------------------------------------------------------------- run
const report = { options: opts };
let exitCode = 1;
try {
  const env = await waitForEnv();
  const hostName = /HostName=([^;]+)/.exec(env.IOTHUB_CONNECTION_STRING)[1];
  const ownerKey = /SharedAccessKey=([^;]+)/.exec(env.IOTHUB_CONNECTION_STRING)[1];
  hub = {
    hostName,
    port: Number(hostName.split(":")[1]),
    ca: readFileSync(env.IOTHUB_CA_FILE, "utf8"),
    token: () => makeToken(ownerKey, hostName, Math.floor(Date.now() / 1000) + 3600, "iothubowner"),
  };
  agent = new Agent({ keepAlive: true, maxSockets: 16, ca: hub.ca });
  progress(`hub pid ${hubProc.pid} on ${hostName}; ${opts.devices} devices for ${opts.duration} s`);

  const devices = Array.from(
    { length: opts.devices },
    (_, i) => new Device(`soak-${String(i).padStart(5, "0")}`),
  );
  for (let i = 0; i < devices.length; i += 100) {
    const batch = devices.slice(i, i + 100).map((d) => ({
      id: d.id,
      importMode: "create",
      authentication: { symmetricKey: { primaryKey: d.key, secondaryKey: d.key } },
    }));
    const res = await rest("POST", "/devices", batch);
    if (res.status !== 200) throw new Error(`registering devices failed: ${res.status} ${res.body}`);
  }
  const connectStart = Date.now();
  await inBatches(devices, 50, async (d) => {
    try {
      await d.connect();
    } catch (error) {
      failure("connect", `${d.id}: ${error.message}`);
    }
  });
  report.connectSeconds = (Date.now() - connectStart) / 1000;
  progress(
    `${devices.filter((d) => d.client?.connected).length} devices connected in ${report.connectSeconds} s`,
  );

  // The load: reported patches, desired patches and reconnects, spread evenly over 100 ms ticks.
  const samples = [];
  const warmup = Math.min(60, Math.max(5, opts.duration * 0.1)) * 1000;
  const started = Date.now();
  const end = started + opts.duration * 1000;
  const inFlight = new Set();
  const track = (p) => {
    inFlight.add(p);
    p.finally(() => inFlight.delete(p));
  };
  const budget = { reported: 0, desired: 0, reconnect: 0 };
  let cursor = 0;
  const pickIdle = () => {
    for (let tries = 0; tries < devices.length; tries++) {
      const d = devices[cursor++ % devices.length];
      if (d.idle()) return d;
    }
    return undefined;
  };
  const pickRandomIdle = () => {
    for (let tries = 0; tries < 20; tries++) {
      const d = devices[Math.floor(Math.random() * devices.length)];
      if (d.idle()) return d;
    }
    return undefined;
  };
  let lastProgress = started;
  while (Date.now() < end && !hubExited) {
    budget.reported += (opts.devices / opts.patchEvery) * 0.1;
    budget.desired += opts.desiredRate * 0.1;
    budget.reconnect += opts.reconnectRate * 0.1;
    for (; budget.reported >= 1; budget.reported--) {
      const d = pickIdle();
      if (d) track(d.report());
    }
    for (; budget.desired >= 1; budget.desired--) {
      const d = pickRandomIdle();
      if (d) track(d.desired());
    }
    for (; budget.reconnect >= 1; budget.reconnect--) {
      const d = pickRandomIdle();
      if (d) track(d.reconnect());
    }
    if (samples.length === 0 || Date.now() - samples[samples.length - 1].at >= 1000) samples.push(measure());
    if (Date.now() - lastProgress >= 10_000) {
      lastProgress = Date.now();
      const m = samples[samples.length - 1];
      progress(
        `${Math.round((Date.now() - started) / 1000)} s: rss ${(m.rss / 2 ** 20).toFixed(1)} MB, ${m.fds} fds, ` +
          `${counts.reportedAcked} reported, ${counts.desiredDelivered} desired, ${counts.reconnects} reconnects, ${failures.length} failures`,
      );
    }
    await sleep(100);
  }
  await Promise.all([...inFlight]);
  // Desired updates still travelling get their own timeout; wait for them to land or fail.
  const settleUntil = Date.now() + ACK_TIMEOUT_MS + 1000;
  while (devices.some((d) => d.desiredWaiting.size > 0) && Date.now() < settleUntil) await sleep(100);

  // Start = median of the first 3 samples once warm; end = median of the last 3 samples of the load.
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const warm = samples.filter((s) => s.at - started >= warmup);
  const first = warm.slice(0, 3);
  const last = warm.slice(-3);
  const start = { rss: median(first.map((s) => s.rss)), fds: median(first.map((s) => s.fds)) };
  const finish = { rss: median(last.map((s) => s.rss)), fds: median(last.map((s) => s.fds)) };
  const growth = (a, b) => Math.round(((b - a) / a) * 1000) / 10;

  // Every device still connected, and its twin (read by the service) holds exactly what was acknowledged.
  const stillConnected = devices.filter((d) => d.client?.connected).length;
  if (stillConnected !== devices.length)
    failure("devices not connected at the end", `${devices.length - stillConnected}`);
  await inBatches(devices, 16, async (d) => {
    const res = await rest("GET", `/twins/${d.id}`).catch((e) => ({ status: 0, body: e.message }));
    if (res.status !== 200) return failure("final twin read", `${d.id}: ${res.status}`);
    const twin = JSON.parse(res.body);
    counts.twinChecks++;
    if ((twin.properties.reported.seq ?? 0) !== d.acked)
      failure(
        "final reported state",
        `${d.id}: seq ${twin.properties.reported.seq}, acknowledged ${d.acked}`,
      );
    if ((twin.properties.desired.seq ?? 0) !== d.desiredSeq)
      failure("final desired state", `${d.id}: seq ${twin.properties.desired.seq}, set ${d.desiredSeq}`);
    if (twin.connectionState !== "Connected")
      failure("final connection state", `${d.id}: ${twin.connectionState}`);
  });

  Object.assign(report, {
    devices: opts.devices,
    seconds: Math.round((Date.now() - started) / 1000),
    warmupSeconds: warmup / 1000,
    operations: { ...counts },
    rss: {
      startMB: +(start.rss / 2 ** 20).toFixed(1),
      endMB: +(finish.rss / 2 ** 20).toFixed(1),
      growthPercent: growth(start.rss, finish.rss),
    },
    handles: { start: start.fds, end: finish.fds, growthPercent: growth(start.fds, finish.fds) },
    samples: samples.length,
  });

  // Disconnect everyone and stop the hub the way a user does (SIGTERM): it must exit 0.
  stopping = true;
  await Promise.all(devices.map((d) => new Promise((r) => (d.client ? d.client.end(false, {}, r) : r()))));
  hubProc.kill("SIGTERM");
  const exit = await Promise.race([hubExit, sleep(15_000).then(() => ({ code: "timeout" }))]);
  if (exit.code !== 0) failure("hub stop", `exit ${exit.code}`);

  report.failures = Object.values(failuresByKind).reduce((a, b) => a + b, 0);
  report.failuresByKind = failuresByKind;
  report.failureDetails = failures;
  const grewTooMuch =
    report.rss.growthPercent >= opts.maxGrowth || report.handles.growthPercent >= opts.maxGrowth;
  report.ok = report.failures === 0 && !grewTooMuch;
  exitCode = report.ok ? 0 : 1;
} catch (error) {
  stopping = true;
  report.ok = false;
  report.error = error.message;
  report.failureDetails = failures;
} finally {
  stopping = true;
  if (!hubExited) hubProc.kill("SIGKILL");
  agent?.destroy();
  rmSync(work, { recursive: true, force: true });
}

if (opts.json) {
  console.log(JSON.stringify(report));
} else {
  const r = report;
  console.log(`soak: ${r.ok ? "PASS" : "FAIL"}${r.error ? ` (${r.error})` : ""}`);
  if (r.rss) {
    console.log(
      `  ${r.devices} devices connected for ${r.seconds} s (connected in ${r.connectSeconds} s; warm-up ${r.warmupSeconds} s)`,
    );
    console.log(
      `  operations: ${r.operations.reportedAcked}/${r.operations.reportedSent} reported patches acknowledged, ` +
        `${r.operations.desiredDelivered}/${r.operations.desiredSent} desired updates delivered, ` +
        `${r.operations.reconnects} reconnects, ${r.operations.twinChecks} twin checks`,
    );
    console.log(`  hub RSS: ${r.rss.startMB} MB -> ${r.rss.endMB} MB (${r.rss.growthPercent} %)`);
    console.log(`  hub open handles: ${r.handles.start} -> ${r.handles.end} (${r.handles.growthPercent} %)`);
    console.log(`  failed operations: ${r.failures}`);
  }
  for (const f of r.failureDetails ?? []) console.log(`  - ${f}`);
}
process.exit(exitCode);
