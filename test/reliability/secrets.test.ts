import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TUTORIAL_DEVICE } from "../../src/hub/auth/credentials.js";
import { makeToken } from "../../src/hub/auth/sas.js";
import {
  CLI,
  deviceToken,
  HUB_BIN,
  type HubProcess,
  inAnHour,
  mqttLogin,
  nowSeconds,
  rest,
  spawnHub,
} from "./support.js";

/**
 * Secrets: keys and tokens never appear in the hub's log or in the CLIs' output, error messages included
 * (with --verbose, which adds stack traces and causes). The hub runs with its own keys (--keys-file) and
 * logs every operation; the test then does good and bad things on every path and greps every byte of
 * output for every key and token it used. Also: the data directory's files that hold keys are owner-only.
 */

const POLICY_NAMES = ["iothubowner", "service", "device", "registryRead", "registryReadWrite"] as const;
const PERMISSIONS: Record<string, string[]> = {
  iothubowner: ["RegistryRead", "RegistryWrite", "ServiceConnect", "DeviceConnect"],
  service: ["ServiceConnect"],
  device: ["DeviceConnect"],
  registryRead: ["RegistryRead"],
  registryReadWrite: ["RegistryRead", "RegistryWrite"],
};
const newKey = () => randomBytes(32).toString("base64");

interface Run {
  what: string;
  code: number | null;
  output: string;
}

function runNode(what: string, args: string[], env: Record<string, string>, cwd: string): Promise<Run> {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith("IOTHUB_") && !k.toUpperCase().includes("CONNECTION_STRING")) clean[k] = v;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd, env: { ...clean, ...env } });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 45_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ what, code, output });
    });
  });
}

describe("secrets: no key or token in any log or error message; key files are owner-only", () => {
  const dir = mkdtempSync(join(tmpdir(), "secrets-"));
  const dataDir = join(dir, "data");
  const cwd = join(dir, "cwd");
  const policies = POLICY_NAMES.map((name) => ({
    name,
    primaryKey: newKey(),
    secondaryKey: newKey(),
    permissions: PERMISSIONS[name],
  }));
  const keyOf = (name: string) => policies.find((p) => p.name === name)!.primaryKey;
  const deviceKey = newKey();
  const wrongKey = newKey();
  /** Every key and token this test uses; none may show up in any output. */
  const secrets: string[] = [
    ...policies.flatMap((p) => [p.primaryKey, p.secondaryKey]),
    deviceKey,
    wrongKey,
    TUTORIAL_DEVICE.primaryKey,
    TUTORIAL_DEVICE.secondaryKey,
  ];
  const tokens: string[] = [];
  const runs: Run[] = [];
  let hub: HubProcess;
  const modes: Record<string, string> = {};

  const token = (t: string) => {
    tokens.push(t);
    return t;
  };

  beforeAll(async () => {
    mkdirSync(cwd, { recursive: true });
    // A data directory the user made beforehand with ordinary permissions: the hub's own files must still be
    // owner-only, whatever the directory's mode.
    mkdirSync(dataDir, { mode: 0o755 });
    const keysFile = join(dir, "keys.json");
    writeFileSync(keysFile, JSON.stringify({ policies }), { mode: 0o600 });
    hub = await spawnHub(dataDir, join(dir, ".env"), { quiet: false, args: ["--keys-file", keysFile] });

    const owner = token(makeToken(keyOf("iothubowner"), hub.hostName, inAnHour(), "iothubowner"));
    const created = await rest(hub, "PUT", "/devices/secret-dev", {
      auth: owner,
      body: JSON.stringify({
        deviceId: "secret-dev",
        authentication: { symmetricKey: { primaryKey: deviceKey, secondaryKey: deviceKey } },
      }),
    });
    expect(created.status).toBe(200);

    // REST: good and bad tokens (the hub logs each request).
    expect((await rest(hub, "GET", "/statistics/devices", { auth: owner })).status).toBe(200);
    const bad = [
      makeToken(wrongKey, hub.hostName, inAnHour(), "iothubowner"),
      makeToken(keyOf("iothubowner"), hub.hostName, nowSeconds() - 10, "iothubowner"),
      makeToken(keyOf("registryRead"), hub.hostName, inAnHour(), "registryRead"),
      makeToken(keyOf("iothubowner"), "otherhub.azure-devices.net", inAnHour(), "iothubowner"),
      deviceToken(hub, "secret-dev", deviceKey),
      `${owner}x`,
    ].map(token);
    for (const t of bad) {
      const res = await rest(hub, "PATCH", "/twins/secret-dev", {
        auth: t,
        body: '{"tags": {"x": 1}}',
        headers: { "if-match": "*" },
      });
      expect(res.status).toBe(401);
      runs.push({ what: "REST 401 answer", code: res.status, output: res.body });
    }
    // Errors that are not about auth, with a good token.
    const badBody = await rest(hub, "PATCH", "/twins/secret-dev", {
      auth: owner,
      body: "{",
      headers: { "if-match": "*" },
    });
    runs.push({ what: "REST 400 answer", code: badBody.status, output: badBody.body });

    // MQTT: a good login and refused ones (the hub logs the reasons).
    const good = await mqttLogin(hub, "secret-dev", token(deviceToken(hub, "secret-dev", deviceKey)));
    expect(good.ok).toBe(true);
    if (good.ok) good.client.end(true);
    for (const t of [
      deviceToken(hub, "secret-dev", wrongKey),
      deviceToken(hub, "secret-dev", deviceKey, nowSeconds() - 10),
      deviceToken(hub, "myDeviceId", deviceKey),
    ].map(token)) {
      const refused = await mqttLogin(hub, "secret-dev", t);
      expect(refused.ok).toBe(false);
      if (!refused.ok)
        runs.push({ what: "MQTT refusal", code: refused.returnCode ?? null, output: refused.reason });
    }

    // The CLIs, with --verbose, succeeding and failing.
    const ca = hub.env.IOTHUB_CA_FILE;
    const service = (name: string, key: string) =>
      `HostName=${hub.hostName};SharedAccessKeyName=${name};SharedAccessKey=${key}`;
    const device = (key: string) => `HostName=${hub.hostName};DeviceId=secret-dev;SharedAccessKey=${key}`;
    const expiredSas = token(deviceToken(hub, "secret-dev", deviceKey, nowSeconds() - 60));
    const validSas = token(deviceToken(hub, "secret-dev", deviceKey));
    const cli = await Promise.all([
      runNode(
        "add-tags-and-query, owner",
        [CLI.addTagsAndQuery, "--verbose"],
        {
          IOTHUB_CONNECTION_STRING: service("iothubowner", keyOf("iothubowner")),
          IOTHUB_DEVICE_ID: "secret-dev",
          IOTHUB_CA_FILE: ca,
        },
        cwd,
      ),
      runNode(
        "add-tags-and-query, wrong key",
        [CLI.addTagsAndQuery, "--verbose"],
        { IOTHUB_CONNECTION_STRING: service("iothubowner", wrongKey), IOTHUB_CA_FILE: ca },
        cwd,
      ),
      runNode(
        "add-tags-and-query, policy without the permission",
        [CLI.addTagsAndQuery, "--verbose"],
        { IOTHUB_CONNECTION_STRING: service("registryRead", keyOf("registryRead")), IOTHUB_CA_FILE: ca },
        cwd,
      ),
      runNode(
        "add-tags-and-query, unknown device",
        [CLI.addTagsAndQuery, "--verbose", "--device", "nobody"],
        { IOTHUB_CONNECTION_STRING: service("iothubowner", keyOf("iothubowner")), IOTHUB_CA_FILE: ca },
        cwd,
      ),
      runNode(
        "add-tags-and-query, malformed string",
        [CLI.addTagsAndQuery, "--verbose"],
        { IOTHUB_CONNECTION_STRING: `${service("iothubowner", keyOf("iothubowner"))};Bogus=1` },
        cwd,
      ),
      runNode(
        "report-connectivity, good key",
        [CLI.reportConnectivity, "--once", "--verbose"],
        { IOTHUB_DEVICE_CONNECTION_STRING: device(deviceKey), IOTHUB_CA_FILE: ca },
        cwd,
      ),
      runNode(
        "report-connectivity, wrong key",
        [CLI.reportConnectivity, "--once", "--verbose", "--timeout", "10"],
        { IOTHUB_DEVICE_CONNECTION_STRING: device(wrongKey), IOTHUB_CA_FILE: ca },
        cwd,
      ),
      runNode(
        "report-connectivity, expired SAS",
        [CLI.reportConnectivity, "--once", "--verbose", "--timeout", "10"],
        {
          IOTHUB_DEVICE_CONNECTION_STRING: `HostName=${hub.hostName};DeviceId=secret-dev;SharedAccessSignature=${expiredSas}`,
          IOTHUB_CA_FILE: ca,
        },
        cwd,
      ),
      runNode(
        "report-connectivity, malformed string",
        [CLI.reportConnectivity, "--verbose"],
        { IOTHUB_DEVICE_CONNECTION_STRING: `${device(deviceKey)};DeviceId=again` },
        cwd,
      ),
    ]);
    // The same device twice at once would be a session takeover (the first connection is closed): run the
    // second good device run on its own.
    cli.push(
      await runNode(
        "report-connectivity, valid SAS",
        [CLI.reportConnectivity, "--once", "--verbose"],
        {
          IOTHUB_DEVICE_CONNECTION_STRING: `HostName=${hub.hostName};DeviceId=secret-dev;SharedAccessSignature=${validSas}`,
          IOTHUB_CA_FILE: ca,
        },
        cwd,
      ),
    );
    runs.push(...cli);
    const byName = Object.fromEntries(cli.map((r) => [r.what, r.code]));
    // The good runs succeeded and the bad ones failed as they should (so the grep looks at real output).
    expect(byName).toEqual({
      "add-tags-and-query, owner": 0,
      "add-tags-and-query, wrong key": 1,
      "add-tags-and-query, policy without the permission": 1,
      "add-tags-and-query, unknown device": 1,
      "add-tags-and-query, malformed string": 2,
      "report-connectivity, good key": 0,
      "report-connectivity, valid SAS": 0,
      "report-connectivity, wrong key": 1,
      "report-connectivity, expired SAS": 1,
      "report-connectivity, malformed string": 2,
    });

    // local-hub refusing keys files that hold a key: the message says what is wrong, never the key.
    const leakyJson = join(dir, "leaky.json");
    const unquoted = newKey();
    secrets.push(unquoted);
    writeFileSync(leakyJson, `{"policies": [{"name": "iothubowner", "primaryKey": ${unquoted}}]}`);
    const shortKey = Buffer.from("too short").toString("base64");
    const badKeyFile = join(dir, "bad-key.json");
    writeFileSync(badKeyFile, JSON.stringify({ policies: [{ ...policies[0], secondaryKey: shortKey }] }));
    const hubFailures = await Promise.all([
      runNode(
        "local-hub, keys file that is not JSON",
        [HUB_BIN, "--verbose", "--port", "0", "--in-memory", "--keys-file", leakyJson],
        {},
        cwd,
      ),
      runNode(
        "local-hub, keys file with a short key",
        [HUB_BIN, "--verbose", "--port", "0", "--in-memory", "--keys-file", badKeyFile],
        {},
        cwd,
      ),
    ]);
    for (const r of hubFailures) expect(r.code, r.output).toBe(1);
    runs.push(...hubFailures);

    // File modes while the hub runs (SQLite's -wal and -shm files exist only then).
    for (const f of readdirSync(dataDir)) modes[f] = (statSync(join(dataDir, f)).mode & 0o777).toString(8);

    // Stop the hub cleanly so its whole log is in.
    const exit = await hub.kill("SIGTERM");
    expect(exit.code).toBe(0);
    runs.push({ what: "local-hub log", code: exit.code, output: hub.output() });
  }, 120_000);

  afterAll(async () => {
    await hub?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("the hub logged the operations (so there was something to grep)", () => {
    const log = hub.output();
    expect(log).toMatch(/REST PATCH \/twins\/secret-dev -> 401/);
    expect(log).toMatch(/MQTT secret-dev connect refused/);
    expect(log).toMatch(/MQTT secret-dev reported patch/);
  });

  it("no output holds any key, in whole or in part (any 8 characters of it), plain or URL-encoded", () => {
    for (const run of runs) {
      for (const secret of secrets) {
        for (const form of [secret, encodeURIComponent(secret)]) {
          for (let i = 0; i + 8 <= form.length; i += 2) {
            expect(run.output, `${run.what} shows part of a key`).not.toContain(form.slice(i, i + 8));
          }
        }
      }
    }
  });

  it("no output holds any token or signature the test or the SDKs used", () => {
    for (const run of runs) {
      for (const t of tokens) {
        expect(run.output, run.what).not.toContain(t);
        const sig = decodeURIComponent(/sig=([^&]+)/.exec(t)?.[1] ?? "");
        for (let i = 0; i + 12 <= sig.length; i += 4)
          expect(run.output, `${run.what} shows part of a signature`).not.toContain(sig.slice(i, i + 12));
      }
      // Tokens the SDKs made themselves are unknown here; none may appear in any form.
      expect(run.output, run.what).not.toMatch(/SharedAccessSignature sr=|[?&]sig=|\bsig=[A-Za-z0-9%+/]{8}/);
    }
  });

  it("the data directory's key files and database (which holds device keys) are mode 0600", () => {
    for (const f of ["ca-key.pem", "server-key.pem", "hub.db", "hub.db-wal"]) {
      expect(modes[f], f).toBe("600");
    }
    // The hub holds its database in SQLite's exclusive locking mode: WAL then uses no -shm file at all.
    expect(modes["hub.db-shm"] ?? "600").toBe("600");
    expect((statSync(join(dir, ".env")).mode & 0o777).toString(8)).toBe("600");
  });
});
