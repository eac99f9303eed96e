import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parse } from "dotenv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VARIABLES } from "../../src/config/index.js";
import { DEFAULT_DATA_DIR, DEFAULT_PORT, type RunningHub, startHub } from "../../src/hub/index.js";
import { run } from "./support.js";

const EXAMPLE = resolve(import.meta.dirname, "../../.env.example");

describe(".env.example", () => {
  const text = readFileSync(EXAMPLE, "utf8");
  const values = parse(text);

  it("documents and sets every variable the tools read", () => {
    for (const name of Object.keys(VARIABLES)) {
      expect(values[name], name).toBeTruthy();
      expect(text).toMatch(new RegExp(`^# .*\\n(# .*\\n)*${name}=`, "m"));
    }
  });

  it("points at the local hub's default port and CA", () => {
    expect(DEFAULT_PORT).toBe(18883);
    expect(values.IOTHUB_CONNECTION_STRING).toMatch(/^HostName=localhost:18883;/);
    expect(values.IOTHUB_DEVICE_CONNECTION_STRING).toMatch(/^HostName=localhost:18883;DeviceId=myDeviceId;/);
    expect(values.IOTHUB_CA_FILE).toBe(`${DEFAULT_DATA_DIR}/ca.pem`);
  });

  describe("works unchanged with a local hub started with the defaults (only the port differs here)", () => {
    let dir: string;
    let hub: RunningHub;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "env-example-"));
      // The hub's default data folder, relative to where the tools run; a free port instead of 18883, which a
      // developer's own local-hub may be using.
      hub = await startHub({ port: 0, dataDir: join(dir, DEFAULT_DATA_DIR), quiet: true });
      writeFileSync(join(dir, ".env"), text.replaceAll("localhost:18883", hub.hostName));
      expect(hub.serviceConnectionString).toBe(
        values.IOTHUB_CONNECTION_STRING!.replace("localhost:18883", hub.hostName),
      );
      expect(hub.deviceConnectionString()).toBe(
        values.IOTHUB_DEVICE_CONNECTION_STRING!.replace("localhost:18883", hub.hostName),
      );
    });
    afterAll(async () => {
      await hub.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it("add-tags-and-query and report-connectivity --once succeed with it as ./.env", async () => {
      const back = await run("add-tags-and-query", [], { cwd: dir });
      expect(back.code, back.stderr).toBe(0);
      expect(back.stdout).toMatch(/^Devices in Redmond43: myDeviceId$/m);
      const device = await run("report-connectivity", ["--once"], { cwd: dir });
      expect(device.code, device.stderr).toBe(0);
      expect(device.stdout).toContain('Desired properties: {"location":"Redmond43"}');
    });
  });
});
