import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { resolve } from "node:path";
import { parse } from "dotenv";
import { type IClientOptions, type MqttClient, connect as mqttConnect } from "mqtt";
import { DEV_POLICIES } from "../../src/hub/auth/credentials.js";
import { makeToken } from "../../src/hub/auth/sas.js";
import { eventually } from "../hub/support.js";
import { Rng } from "./fuzz/rng.js";

/**
 * Helpers shared by the reliability suites: the built `local-hub` as a child process (so it can be killed
 * with SIGKILL), raw HTTPS and MQTT clients that send what the SDKs never would, SAS tokens, and tallies
 * that print "cases tried, cases handled as expected".
 */

export const ROOT = resolve(import.meta.dirname, "../..");
export const HUB_BIN = resolve(ROOT, "dist/cli/local-hub.js");
export const CLI = {
  addTagsAndQuery: resolve(ROOT, "dist/cli/add-tags-and-query.js"),
  reportConnectivity: resolve(ROOT, "dist/cli/report-connectivity.js"),
} as const;

export const policy = (name: string) => {
  const found = DEV_POLICIES.find((p) => p.name === name);
  if (!found) throw new Error(`no development policy ${name}`);
  return found;
};
export const nowSeconds = () => Math.floor(Date.now() / 1000);
export const inAnHour = () => nowSeconds() + 3600;

/** Where a hub listens: enough to reach it with raw clients. */
export interface HubAddress {
  port: number;
  hostName: string;
  caPem: string;
}

/** A `local-hub` child process started from the built CLI. */
export interface HubProcess extends HubAddress {
  child: ChildProcess;
  pid: number;
  env: Record<string, string>;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `node dist/cli/local-hub.js --data-dir <dir> --write-env <file>` and resolves once the env file is
 * written (the hub writes it after it is listening). Rejects if the process exits first, with its output.
 */
export async function spawnHub(
  dataDir: string,
  envFile: string,
  options: { port?: number; quiet?: boolean; args?: string[]; nodeArgs?: string[] } = {},
): Promise<HubProcess> {
  rmSync(envFile, { force: true });
  const args = [
    ...(options.nodeArgs ?? []),
    HUB_BIN,
    "--port",
    String(options.port ?? 0),
    "--data-dir",
    dataDir,
    "--write-env",
    envFile,
    ...(options.quiet === false ? [] : ["--quiet"]),
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout?.on("data", (d) => (out += d));
  child.stderr?.on("data", (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once("exit", (code, signal) => r({ code, signal })),
  );
  let gone = false;
  void exited.then(() => (gone = true));
  await eventually(() => {
    if (gone) throw new Error(`local-hub exited before listening:\n${out}`);
    return existsSync(envFile) && readFileSync(envFile, "utf8").includes("IOTHUB_CA_FILE") ? true : undefined;
  }, 30_000);
  const env = parse(readFileSync(envFile, "utf8"));
  const hostName = /HostName=([^;]+)/.exec(env.IOTHUB_CONNECTION_STRING)?.[1] ?? "";
  return {
    child,
    pid: child.pid ?? -1,
    env,
    hostName,
    port: Number(hostName.split(":")[1]),
    caPem: readFileSync(env.IOTHUB_CA_FILE, "utf8"),
    output: () => out,
    exited,
    kill: (signal: NodeJS.Signals = "SIGKILL") => {
      if (!gone) child.kill(signal);
      return exited;
    },
  };
}

export interface RestResult {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  json<T = Record<string, unknown>>(): T;
}

export interface RestCall {
  auth?: string;
  body?: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
  /** Query string after `?api-version=...`, e.g. `&top=5`. */
  query?: string;
}

/** One raw HTTPS request to the hub (no keep-alive), to send exactly what a test wants. */
export function rest(
  hub: HubAddress,
  method: string,
  path: string,
  opts: RestCall = {},
): Promise<RestResult> {
  return new Promise((resolvePromise, reject) => {
    const req = request(
      {
        host: "localhost",
        port: hub.port,
        method,
        path: `${path}?api-version=2021-04-12${opts.query ?? ""}`,
        ca: hub.caPem,
        agent: false,
        headers: {
          ...(opts.auth ? { authorization: opts.auth } : {}),
          ...(opts.body !== undefined
            ? { "content-type": opts.contentType ?? "application/json; charset=utf-8" }
            : {}),
          ...opts.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (d: Buffer) => chunks.push(d));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8");
          resolvePromise({
            status: res.statusCode ?? 0,
            body,
            headers: res.headers,
            json: <T>() => JSON.parse(body) as T,
          });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** A service token for a policy of the hub (the development keys unless `key` is given). */
export function serviceToken(
  hub: Pick<HubAddress, "hostName">,
  policyName = "iothubowner",
  opts: { key?: string; expiry?: number; resource?: string } = {},
): string {
  return makeToken(
    opts.key ?? policy(policyName).primaryKey,
    opts.resource ?? hub.hostName,
    opts.expiry ?? inAnHour(),
    policyName,
  );
}

/** A device token as the device SDK makes it: sr = `<host>/devices/<id>`, no skn. */
export function deviceToken(
  hub: Pick<HubAddress, "hostName">,
  deviceId: string,
  key: string,
  expiry = inAnHour(),
): string {
  return makeToken(key, `${hub.hostName}/devices/${deviceId}`, expiry);
}

/** The outcome of an MQTT CONNECT: the client, or the CONNACK return code / reason it was refused. */
export type MqttOutcome =
  | { ok: true; client: MqttClient }
  | { ok: false; returnCode?: number; reason: string };

/** Connects like azure-iot-device-mqtt does (client id = device id, IoT Hub user name, SAS password). */
export function mqttLogin(
  hub: HubAddress,
  deviceId: string,
  password: string,
  extra: Partial<IClientOptions> = {},
): Promise<MqttOutcome> {
  return new Promise((resolvePromise) => {
    const client = mqttConnect(`mqtts://localhost:${hub.port}`, {
      clientId: deviceId,
      username: `${hub.hostName}/${deviceId}/?api-version=2021-04-12`,
      password,
      ca: hub.caPem,
      reconnectPeriod: 0,
      connectTimeout: 20_000,
      protocolVersion: 4,
      ...extra,
    });
    let settled = false;
    const settle = (outcome: MqttOutcome) => {
      if (settled) return;
      settled = true;
      if (!outcome.ok) client.end(true);
      resolvePromise(outcome);
    };
    client.once("connect", () => settle({ ok: true, client }));
    client.once("error", (error: Error & { code?: number }) =>
      settle({
        ok: false,
        returnCode: typeof error.code === "number" ? error.code : undefined,
        reason: error.message,
      }),
    );
    client.once("close", () => settle({ ok: false, reason: "connection closed" }));
  });
}

/** Subscribes and returns the granted QoS of each filter (128 = refused). */
export function subscribe(client: MqttClient, filter: string | string[], qos: 0 | 1 = 0): Promise<number[]> {
  return new Promise((resolvePromise, reject) =>
    client.subscribe(filter, { qos }, (err, granted) =>
      err ? reject(err) : resolvePromise((granted ?? []).map((g) => g.qos)),
    ),
  );
}

/** Resolves when the client's connection has closed. */
export function closed(client: MqttClient): Promise<void> {
  return new Promise((r) => {
    if (!client.connected && (client as unknown as { disconnected?: boolean }).disconnected) return r();
    client.once("close", () => r());
  });
}

/**
 * A counted suite: each case records that it was tried and whether it was handled as expected; `line()` is
 * the summary the README quotes.
 */
export class Tally {
  tried = 0;
  handled = 0;
  private readonly failures: string[] = [];
  constructor(readonly name: string) {}

  /** Runs one case; it counts as handled when `check` returns without throwing. Rethrows failures. */
  async run(caseName: string, check: () => Promise<void> | void): Promise<void> {
    this.tried++;
    try {
      await check();
      this.handled++;
    } catch (error) {
      this.failures.push(caseName);
      throw error;
    }
  }

  line(): string {
    return `[reliability] ${this.name}: ${this.tried} cases tried, ${this.handled} handled as expected${
      this.failures.length ? ` (not handled: ${this.failures.join("; ")})` : ""
    }`;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A seeded PRNG (the fuzz suite's mulberry32) as a function, so a failing run can be replayed. */
export function prng(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}
