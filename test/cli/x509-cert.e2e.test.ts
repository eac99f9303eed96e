import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Client as DeviceClient } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import { afterAll, describe, expect, it } from "vitest";
import { registryFor } from "../hub/support.js";
import { run, start } from "./support.js";

// biome-ignore lint/suspicious/noExplicitAny: identities carry fields the SDK's Device type does not declare
type AnyDevice = any;

describe("local-hub cert and --ca-cert (built CLI): devices log in with the certificates it makes", () => {
  const dir = mkdtempSync(join(tmpdir(), "x509-cli-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("self-signed and CA-signed device certificates authenticate through the SDK; files are never overwritten", async () => {
    const self = await run("local-hub", ["cert", "self-signed", "--device-id", "cli-thumb", "--out", dir]);
    expect(self.code, self.stderr).toBe(0);
    const sha1 = /SHA-1 thumbprint:\s+([0-9A-F]{40})/.exec(self.stdout)?.[1];
    expect(sha1).toBeDefined();
    expect(statSync(join(dir, "cli-thumb-key.pem")).mode & 0o777).toBe(0o600);

    const again = await run("local-hub", ["cert", "self-signed", "--device-id", "cli-thumb", "--out", dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists: remove it or choose another folder with --out/);
    expect(again.stderr).not.toMatch(/\n\s+at /);

    expect((await run("local-hub", ["cert", "ca", "--out", dir])).code).toBe(0);
    const device = await run("local-hub", [
      "cert",
      "device",
      "--device-id",
      "cli-ca",
      "--ca",
      join(dir, "device-ca.pem"),
      "--ca-key",
      join(dir, "device-ca-key.pem"),
      "--out",
      dir,
      "--days",
      "2",
    ]);
    expect(device.code, device.stderr).toBe(0);

    const hub = start("local-hub", ["--in-memory", "--port", "0", "--ca-cert", join(dir, "device-ca.pem")]);
    try {
      const [, hostName] = await hub.waitForStdout(/listening on (localhost:\d+)/);
      const [, caFile] = await hub.waitForStdout(/trust:\s+(\S+)/);
      await hub.waitForStdout(/x509:\s+trusting 1 CA certificate/);
      const [, owner] = await hub.waitForStdout(
        /(HostName=\S+;SharedAccessKeyName=iothubowner;SharedAccessKey=\S+)/,
      );
      const caPem = readFileSync(caFile!, "utf8");
      const registry = registryFor(owner!, caPem);
      await registry.create({
        deviceId: "cli-thumb",
        authentication: { type: "selfSigned", x509Thumbprint: { primaryThumbprint: sha1 } },
      } as AnyDevice);
      await registry.create({
        deviceId: "cli-ca",
        authentication: { type: "certificateAuthority" },
      } as AnyDevice);
      for (const id of ["cli-thumb", "cli-ca"]) {
        const client = DeviceClient.fromConnectionString(
          `HostName=${hostName};DeviceId=${id};x509=true`,
          Mqtt,
        );
        await client.setOptions({
          cert: readFileSync(join(dir, `${id}.pem`), "utf8"),
          key: readFileSync(join(dir, `${id}-key.pem`), "utf8"),
          ca: caPem,
        });
        await client.open();
        const twin = await client.getTwin();
        expect(twin.properties.reported).toBeDefined();
        await client.close();
      }
    } finally {
      hub.child.kill("SIGTERM");
      await hub.exited;
    }
  }, 60_000);

  // docs/x509.md tells users how to make device certificates with OpenSSL: its commands, run as written, must
  // make certificates that log in (a thumbprint device and a CA-signed one), and a wrong one must not.
  const hasOpenssl = spawnSync("openssl", ["version"]).status === 0;
  it.skipIf(!hasOpenssl)(
    "the OpenSSL commands of docs/x509.md make certificates that log in",
    async () => {
      const docs = readFileSync(resolve(import.meta.dirname, "../../docs/x509.md"), "utf8");
      const block = /```sh\n(# self-signed device certificate[\s\S]*?)```/.exec(docs)?.[1];
      expect(block, "docs/x509.md has no OpenSSL block").toBeDefined();
      const work = join(dir, "openssl");
      mkdirSync(join(work, "certs"), { recursive: true });
      const printed = execFileSync("sh", ["-e", "-c", block!], {
        cwd: work,
        encoding: "utf8",
        stdio: "pipe",
      });
      const sha1 = /^[0-9A-F]{40}$/m.exec(printed)?.[0];
      expect(sha1, printed).toBeDefined();

      const cert = (name: string) => readFileSync(join(work, "certs", name), "utf8");
      const hub = start("local-hub", [
        "--in-memory",
        "--port",
        "0",
        "--ca-cert",
        join(work, "certs/device-ca.pem"),
      ]);
      try {
        const [, hostName] = await hub.waitForStdout(/listening on (localhost:\d+)/);
        const [, caFile] = await hub.waitForStdout(/trust:\s+(\S+)/);
        const [, owner] = await hub.waitForStdout(
          /(HostName=\S+;SharedAccessKeyName=iothubowner;SharedAccessKey=\S+)/,
        );
        const caPem = readFileSync(caFile!, "utf8");
        const registry = registryFor(owner!, caPem);
        await registry.create({
          deviceId: "thermostat-1",
          authentication: { type: "selfSigned", x509Thumbprint: { primaryThumbprint: sha1 } },
        } as AnyDevice);
        await registry.create({
          deviceId: "thermostat-2",
          authentication: { type: "certificateAuthority" },
        } as AnyDevice);
        const login = async (id: string, certFile: string) => {
          const client = DeviceClient.fromConnectionString(
            `HostName=${hostName};DeviceId=${id};x509=true`,
            Mqtt,
          );
          await client.setOptions({
            cert: cert(`${certFile}.pem`),
            key: cert(`${certFile}-key.pem`),
            ca: caPem,
          });
          try {
            await client.open();
            return (await client.getTwin()).properties.reported.$version as number;
          } finally {
            await client.close().catch(() => {});
          }
        };
        expect(await login("thermostat-1", "thermostat-1")).toBe(1);
        expect(await login("thermostat-2", "thermostat-2")).toBe(1);
        // Each device's certificate is refused for the other: thumbprint mismatch, and CN is not the device ID.
        await expect(login("thermostat-1", "thermostat-2")).rejects.toThrow(/not authorized|Unauthorized/i);
        await expect(login("thermostat-2", "thermostat-1")).rejects.toThrow(/not authorized|Unauthorized/i);
      } finally {
        hub.child.kill("SIGTERM");
        await hub.exited;
      }
    },
    60_000,
  );

  it("--ca-cert refuses a file that is not a CA certificate, naming it", async () => {
    const self = await run("local-hub", ["cert", "self-signed", "--device-id", "not-a-ca", "--out", dir]);
    expect(self.code).toBe(0);
    const result = await run("local-hub", [
      "--in-memory",
      "--port",
      "0",
      "--ca-cert",
      join(dir, "not-a-ca.pem"),
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/--ca-cert .*not-a-ca\.pem .*is not a CA certificate/);
    const missing = await run("local-hub", [
      "--in-memory",
      "--port",
      "0",
      "--ca-cert",
      join(dir, "nope.pem"),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cannot read --ca-cert .*nope\.pem: ENOENT/);
  });
});
