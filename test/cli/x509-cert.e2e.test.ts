import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
