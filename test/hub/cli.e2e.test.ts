import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parse } from "dotenv";
import { afterAll, describe, expect, it } from "vitest";
import type { TwinDocument } from "../../src/hub/twin/types.js";
import { eventually, registryFor, twinOf } from "./support.js";

const BIN = resolve(import.meta.dirname, "../../dist/cli/local-hub.js");

interface HubProcess {
  child: ChildProcess;
  env: Record<string, string>;
  output: () => string;
}

async function runHub(dataDir: string, envFile: string, extra: string[] = []): Promise<HubProcess> {
  rmSync(envFile, { force: true });
  const child = spawn(
    process.execPath,
    [BIN, "--port", "0", "--data-dir", dataDir, "--write-env", envFile, ...extra],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  child.stdout?.on("data", (d) => (out += d));
  child.stderr?.on("data", (d) => (out += d));
  await eventually(
    () =>
      existsSync(envFile) && readFileSync(envFile, "utf8").includes("IOTHUB_CA_FILE") ? true : undefined,
    20_000,
  );
  return { child, env: parse(readFileSync(envFile, "utf8")), output: () => out };
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((r) => child.once("exit", (code, signal) => r({ code, signal })));
}

describe("the local-hub command", () => {
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), "hub-cli-"));
    dirs.push(d);
    return d;
  };
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("writes a dotenv file, a CA and owner-only key files, and stops cleanly on SIGTERM", async () => {
    const dir = tmp();
    const hub = await runHub(join(dir, "data"), join(dir, ".env"));
    expect(hub.env.IOTHUB_CONNECTION_STRING).toMatch(
      /^HostName=localhost:\d+;SharedAccessKeyName=iothubowner;SharedAccessKey=/,
    );
    expect(hub.env.IOTHUB_DEVICE_CONNECTION_STRING).toMatch(/;DeviceId=myDeviceId;/);
    expect(hub.env.IOTHUB_DEVICE_ID).toBe("myDeviceId");
    expect(readFileSync(hub.env.IOTHUB_CA_FILE, "utf8")).toContain("BEGIN CERTIFICATE");
    for (const f of ["ca-key.pem", "server-key.pem"])
      expect(statSync(join(dir, "data", f)).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, ".env")).mode & 0o777).toBe(0o600);
    await eventually(() => (hub.output().includes("Press Ctrl-C to stop") ? true : undefined));
    const exited = exitOf(hub.child);
    hub.child.kill("SIGTERM");
    expect((await exited).code).toBe(0);
  });

  it("keeps acknowledged writes across kill -9", async () => {
    const dir = tmp();
    const data = join(dir, "data");
    const first = await runHub(data, join(dir, ".env"));
    const ca = readFileSync(first.env.IOTHUB_CA_FILE, "utf8");
    const registry = registryFor(first.env.IOTHUB_CONNECTION_STRING, ca);
    await registry.create({ deviceId: "durable" });
    const twin = (
      await registry.updateTwin("durable", { tags: { kept: "yes" }, properties: { desired: { n: 42 } } }, "*")
    ).responseBody as unknown as TwinDocument;
    const killed = exitOf(first.child);
    first.child.kill("SIGKILL");
    expect((await killed).signal).toBe("SIGKILL");

    const second = await runHub(data, join(dir, ".env"));
    try {
      const again = registryFor(
        second.env.IOTHUB_CONNECTION_STRING,
        readFileSync(second.env.IOTHUB_CA_FILE, "utf8"),
      );
      const after = await twinOf(again, "durable");
      expect(after.tags).toEqual({ kept: "yes" });
      expect(after.properties.desired.n).toBe(42);
      expect(after.version).toBe(twin.version);
      expect(after.etag).toBe(twin.etag);
    } finally {
      second.child.kill("SIGKILL");
    }
  });

  it("--standard-ports serves 443, 8883 and 5671 so unmodified SDK code works with HostName=localhost, over WebSockets too", async () => {
    const dir = tmp();
    const envFile = join(dir, ".env");
    const child = spawn(
      process.execPath,
      [BIN, "--standard-ports", "--in-memory", "--quiet", "--write-env", envFile],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let err = "";
    child.stderr?.on("data", (d) => (err += d));
    const exited = exitOf(child);
    const outcome = await Promise.race([
      exited.then((e) => ({ exited: e })),
      eventually(() => (existsSync(envFile) ? { listening: true } : undefined), 20_000),
    ]);
    if ("exited" in outcome) {
      // Without the privilege to bind low ports, or with them taken, the command says so and exits 1.
      expect(outcome.exited.code).toBe(1);
      expect(err).toMatch(/not allowed to bind|already in use/);
      return;
    }
    try {
      const env = parse(readFileSync(envFile, "utf8"));
      expect(env.IOTHUB_CONNECTION_STRING).toMatch(/^HostName=localhost;/);
      const user = spawn(process.execPath, [join(import.meta.dirname, "fixtures/unmodified-sdk.cjs")], {
        env: { ...process.env, ...env, NODE_EXTRA_CA_CERTS: env.IOTHUB_CA_FILE },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      user.stdout?.on("data", (d) => (out += d));
      user.stderr?.on("data", (d) => (out += d));
      expect((await exitOf(user)).code, out).toBe(0);
      expect(JSON.parse(out)).toEqual({ serviceVersion: 1, reportedVersion: 1 });
      // Over WebSockets only, in the same test so that no other test holds the standard ports meanwhile: the
      // device with MqttWs (443) and azure-iothub's service Client with AmqpWs ($cbs over WebSockets).
      const ws = spawn(process.execPath, [join(import.meta.dirname, "fixtures/unmodified-ws.cjs")], {
        env: { ...process.env, ...env, NODE_EXTRA_CA_CERTS: env.IOTHUB_CA_FILE },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let wsOut = "";
      ws.stdout?.on("data", (d) => (wsOut += d));
      ws.stderr?.on("data", (d) => (wsOut += d));
      expect((await exitOf(ws)).code, wsOut).toBe(0);
      expect(JSON.parse(wsOut)).toEqual({ via: "MqttWs", reportedVersion: 2, serviceOpened: true });
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
  });

  it("exits 2 with a usage message on a bad option", async () => {
    const child = spawn(process.execPath, [BIN, "--port", "http"], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stderr?.on("data", (d) => (err += d));
    expect((await exitOf(child)).code).toBe(2);
    expect(err).toMatch(/--port/);
  });

  it("exits 1 with a hint when the port is taken", async () => {
    const dir = tmp();
    const hub = await runHub(join(dir, "a"), join(dir, ".env"));
    const port = /localhost:(\d+)/.exec(hub.env.IOTHUB_CONNECTION_STRING)?.[1] ?? "";
    const child = spawn(process.execPath, [BIN, "--port", port, "--data-dir", join(dir, "b")], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    child.stderr?.on("data", (d) => (err += d));
    expect((await exitOf(child)).code).toBe(1);
    expect(err).toMatch(/already in use/);
    expect(err).not.toMatch(/at .*\.js:\d+/);
    hub.child.kill("SIGKILL");
  });
});
