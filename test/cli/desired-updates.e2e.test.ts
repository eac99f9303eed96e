import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerDevice, start, startTestHub, type TestHub } from "./support.js";

/** The hub pushes a desired-property patch to a running report-connectivity. */
describe("report-connectivity, running", () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub();
  });
  afterAll(async () => {
    await t.close();
  });

  it("prints each desired update as it arrives and exits 0 on SIGTERM after closing the client", async () => {
    const tool = start("report-connectivity", ["--env-file", t.envFile]);
    await tool.waitForStdout(/^Waiting for desired property updates\. Press Ctrl-C to stop\.$/m);
    expect(tool.stdout()).toMatch(
      /^Reported connectivity\.type = cellular \(reported properties version \d+\)\.$/m,
    );
    expect(t.hub.connectedDevices).toBe(1);

    await t.registry.updateTwin("myDeviceId", { properties: { desired: { location: "Redmond44" } } }, "*");
    const first = await tool.waitForStdout(/^Desired properties changed \(version (\d+)\): (.*)$/m);
    expect(JSON.parse(first[2]!)).toEqual({ location: "Redmond44" });

    await t.registry.updateTwin(
      "myDeviceId",
      { properties: { desired: { telemetryInterval: 5, location: null } } },
      "*",
    );
    const second = await tool.waitForStdout(
      /^Desired properties changed \(version (\d+)\): (.*\{"telemetryInterval".*)$/m,
    );
    expect(JSON.parse(second[2]!)).toEqual({ telemetryInterval: 5, location: null });
    expect(Number(second[1])).toBe(Number(first[1]) + 1);
    const { responseBody: twin } = await t.registry.getTwin("myDeviceId");
    expect(Number(second[1])).toBe(twin.properties.desired.$version);

    // Each update is printed once: not again when the SDK re-reads the twin.
    expect(tool.stdout().match(/Desired properties changed/g)).toHaveLength(2);

    tool.child.kill("SIGTERM");
    const result = await tool.exited;
    expect(result.code, result.stderr).toBe(0);
    expect(result.signal).toBeNull();
    expect(result.stdout).toMatch(/Disconnected\.\n$/);
    expect(result.stderr).toBe("");
    // The client closed its connection: the hub no longer counts the device as connected.
    const deadline = Date.now() + 5000;
    while (t.hub.connectedDevices !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(t.hub.connectedDevices).toBe(0);
  });

  it("with --json prints one JSON object per line, and stops on SIGINT with exit 0", async () => {
    await registerDevice(t.registry, "jsonDevice");
    const envFile = t.writeEnv("json.env", [
      `IOTHUB_DEVICE_CONNECTION_STRING=${t.hub.deviceConnectionString("jsonDevice")}`,
      `IOTHUB_CA_FILE=${t.hub.caFile}`,
    ]);
    const tool = start("report-connectivity", ["--json", "--type", "satellite", "--env-file", envFile]);
    await tool.waitForStdout(/"event":"reported"/);
    const reported = JSON.parse(tool.stdout().trim().split("\n")[0]!);
    expect(reported).toMatchObject({
      event: "reported",
      deviceId: "jsonDevice",
      reported: { connectivity: { type: "satellite" } },
    });
    expect(typeof reported.reportedVersion).toBe("number");

    await t.registry.updateTwin("jsonDevice", { properties: { desired: { mode: "eco" } } }, "*");
    await tool.waitForStdout(/"event":"desired"/);
    const lines = tool
      .stdout()
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines[1]).toEqual({ event: "desired", version: expect.any(Number), patch: { mode: "eco" } });

    tool.child.kill("SIGINT");
    const result = await tool.exited;
    expect(result.code, result.stderr).toBe(0);
    for (const line of result.stdout.trim().split("\n")) expect(() => JSON.parse(line)).not.toThrow();
  });

  it("delivers an update made right after it connected (no gap before the subscription)", async () => {
    await registerDevice(t.registry, "racyDevice");
    const envFile = t.writeEnv("racy.env", [
      `IOTHUB_DEVICE_CONNECTION_STRING=${t.hub.deviceConnectionString("racyDevice")}`,
      `IOTHUB_CA_FILE=${t.hub.caFile}`,
    ]);
    const tool = start("report-connectivity", ["--env-file", envFile]);
    // Patch as soon as the device shows up as connected, i.e. possibly before it subscribed.
    const deadline = Date.now() + 20_000;
    while (t.hub.connectedDevices < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await t.registry.updateTwin("racyDevice", { properties: { desired: { early: true } } }, "*");
    await tool.waitForStdout(/^Waiting for desired property updates/m);
    const { responseBody: twin } = await t.registry.getTwin("racyDevice");
    // Either the first read already had it, or it arrives as an update: never lost.
    const seen = /Desired properties: \{"early":true\}/.test(tool.stdout())
      ? true
      : (await tool.waitForStdout(/Desired properties changed \(version \d+\): \{"early":true\}/)).length > 0;
    expect(seen).toBe(true);
    expect(twin.properties.desired.early).toBe(true);
    tool.child.kill("SIGTERM");
    expect((await tool.exited).code).toBe(0);
  });

  it("exits 1 with the cause when the device is disabled while it runs", async () => {
    await registerDevice(t.registry, "doomedDevice");
    const envFile = t.writeEnv("doomed.env", [
      `IOTHUB_DEVICE_CONNECTION_STRING=${t.hub.deviceConnectionString("doomedDevice")}`,
      `IOTHUB_CA_FILE=${t.hub.caFile}`,
    ]);
    const tool = start("report-connectivity", ["--env-file", envFile]);
    await tool.waitForStdout(/^Waiting for desired property updates/m);
    const { responseBody: identity } = await t.registry.get("doomedDevice");
    await t.registry.update({ ...identity, status: "disabled" });
    const result = await tool.exited;
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^warning: The connection to localhost:\d+ was closed/m);
    expect(result.stderr).toMatch(/^error: The hub localhost:\d+ refused the device 'doomedDevice'/m);
    expect(result.stderr).toMatch(/^hint: .*a disabled device is refused too/m);
  });

  it("warns while the hub is gone and keeps trying; SIGTERM still exits 0", async () => {
    const other = await startTestHub();
    try {
      const tool = start("report-connectivity", ["--env-file", other.envFile]);
      await tool.waitForStdout(/^Waiting for desired property updates/m);
      await other.hub.stop();
      await tool.waitForStderr(/^warning: .*(ECONNREFUSED|was closed).*Reconnecting\.\.\.$/m);
      expect(tool.child.exitCode).toBeNull();
      tool.child.kill("SIGTERM");
      const result = await tool.exited;
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).not.toMatch(/^error:/m);
    } finally {
      await other.close();
    }
  });

  it("exits 0 on SIGTERM while it is still connecting", async () => {
    const tool = start("report-connectivity", ["--verbose", "--env-file", t.envFile]);
    await tool.waitForStderr(/Connecting as myDeviceId over MQTT/);
    tool.child.kill("SIGTERM");
    const result = await tool.exited;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).not.toContain("Waiting for desired property updates");
  });
});
