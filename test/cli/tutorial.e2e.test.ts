import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { json, registerDevice, run, startTestHub, type TestHub } from "./support.js";

interface QueryOutput {
  statistics: { totalDeviceCount: number; enabledDeviceCount: number; disabledDeviceCount: number };
  updated?: { deviceId: string; version: number };
  plant: string;
  connectivity: string;
  inPlant: string[];
  inPlantCellular: string[];
  consistent: boolean | null;
  pages: { inPlant: number; inPlantCellular: number };
}

interface ReportOutput {
  deviceId: string;
  desired: Record<string, unknown>;
  reported: Record<string, unknown>;
  reportedVersion: number;
}

async function twinVersion(t: TestHub, deviceId: string): Promise<number> {
  const { responseBody } = await t.registry.getTwin(deviceId);
  return (responseBody as unknown as { version: number }).version;
}

describe("the tutorial sequence with the built tools", () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub();
  });
  afterAll(async () => {
    await t.close();
  });

  it("before: the device is in the plant but not in the cellular query; after reporting: in both", async () => {
    const envFile = ["--env-file", t.envFile];

    const before = await run("add-tags-and-query", [...envFile]);
    expect(before.code, before.stderr).toBe(0);
    expect(before.stdout).toContain("Registry statistics: 1 device (1 enabled, 0 disabled)");
    expect(before.stdout).toMatch(
      /^Updated the twin of myDeviceId to version \d+:\n {2}tags\.location = \{"region":"US","plant":"Redmond43"\}, desired location = "Redmond43"$/m,
    );
    expect(before.stdout).toMatch(/^Devices in Redmond43: myDeviceId$/m);
    expect(before.stdout).toMatch(/^Devices in Redmond43 using cellular network: \(none\)$/m);
    expect(before.stderr).toBe("");

    // The back-end's writes really landed in the twin.
    const { responseBody: twin } = await t.registry.getTwin("myDeviceId");
    expect(twin.tags).toEqual({ location: { region: "US", plant: "Redmond43" } });
    expect(twin.properties.desired.location).toBe("Redmond43");

    const report = await run("report-connectivity", ["--once", ...envFile]);
    expect(report.code, report.stderr).toBe(0);
    expect(report.stdout).toMatch(/^Connected to localhost:\d+ as myDeviceId\.$/m);
    expect(report.stdout).toContain('Desired properties: {"location":"Redmond43"}');
    expect(report.stdout).toMatch(
      /^Reported connectivity\.type = cellular \(reported properties version \d+\)\.$/m,
    );

    const after = await run("add-tags-and-query", [...envFile]);
    expect(after.code, after.stderr).toBe(0);
    expect(after.stdout).toMatch(/^Devices in Redmond43: myDeviceId$/m);
    expect(after.stdout).toMatch(/^Devices in Redmond43 using cellular network: myDeviceId$/m);
  });

  it("--json prints one object with statistics, updated, inPlant and inPlantCellular", async () => {
    const versionBefore = await twinVersion(t, "myDeviceId");
    const result = await run("add-tags-and-query", ["--json", "--env-file", t.envFile]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim().split("\n")).toHaveLength(1);
    const output = json<QueryOutput>(result);
    expect(output.statistics).toEqual({ totalDeviceCount: 1, enabledDeviceCount: 1, disabledDeviceCount: 0 });
    expect(output.updated?.deviceId).toBe("myDeviceId");
    expect(output.updated?.version).toBeGreaterThan(versionBefore);
    expect(output.updated?.version).toBe(await twinVersion(t, "myDeviceId"));
    expect(output.inPlant).toEqual(["myDeviceId"]);
    expect(output.inPlantCellular).toEqual(["myDeviceId"]);
    expect(output.consistent).toBe(true);
  });

  it("report-connectivity --once --json prints deviceId, reported and reportedVersion", async () => {
    const result = await run("report-connectivity", [
      "--once",
      "--json",
      "--type",
      "wifi",
      "--env-file",
      t.envFile,
    ]);
    expect(result.code, result.stderr).toBe(0);
    const output = json<ReportOutput>(result);
    expect(output.deviceId).toBe("myDeviceId");
    expect(output.reported).toEqual({ connectivity: { type: "wifi" } });
    expect(output.desired).toEqual({ location: "Redmond43" });
    const { responseBody: twin } = await t.registry.getTwin("myDeviceId");
    expect(output.reportedVersion).toBe(twin.properties.reported.$version);
    expect(twin.properties.reported.connectivity).toEqual({ type: "wifi" });

    // wifi now: out of the cellular query, into a --connectivity wifi query.
    const cellular = json<QueryOutput>(
      await run("add-tags-and-query", ["--json", "--no-update", "--env-file", t.envFile]),
    );
    expect(cellular.inPlantCellular).toEqual([]);
    const wifi = json<QueryOutput>(
      await run("add-tags-and-query", [
        "--json",
        "--no-update",
        "--connectivity",
        "wifi",
        "--env-file",
        t.envFile,
      ]),
    );
    expect(wifi.inPlantCellular).toEqual(["myDeviceId"]);
    expect(wifi.connectivity).toBe("wifi");
  });

  it("--no-update only queries: the twin version does not move and no 'updated' is printed", async () => {
    const versionBefore = await twinVersion(t, "myDeviceId");
    const result = await run("add-tags-and-query", ["--no-update", "--json", "--env-file", t.envFile]);
    expect(result.code, result.stderr).toBe(0);
    const output = json<QueryOutput>(result);
    expect(output).not.toHaveProperty("updated");
    expect(output.consistent).toBeNull();
    expect(await twinVersion(t, "myDeviceId")).toBe(versionBefore);
    const human = await run("add-tags-and-query", ["--no-update", "--env-file", t.envFile]);
    expect(human.stdout).not.toContain("Updated the twin");
  });

  it("--plant, --region and --device move another device into another plant", async () => {
    await registerDevice(t.registry, "otherDevice");
    const result = await run("add-tags-and-query", [
      "--device",
      "otherDevice",
      "--plant",
      "Dublin 7",
      "--region",
      "EU",
      "--json",
      "--env-file",
      t.envFile,
    ]);
    expect(result.code, result.stderr).toBe(0);
    const output = json<QueryOutput>(result);
    expect(output.updated?.deviceId).toBe("otherDevice");
    expect(output.inPlant).toEqual(["otherDevice"]);
    expect(output.statistics.totalDeviceCount).toBe(2);
    const { responseBody: twin } = await t.registry.getTwin("otherDevice");
    expect(twin.tags).toEqual({ location: { region: "EU", plant: "Dublin 7" } });
    expect(twin.properties.desired.location).toBe("Dublin 7");
  });

  it("IOTHUB_DEVICE_ID in the environment wins over the env file, and --device over both", async () => {
    const viaEnv = json<QueryOutput>(
      await run("add-tags-and-query", ["--json", "--plant", "EnvPlant", "--env-file", t.envFile], {
        env: { IOTHUB_DEVICE_ID: "otherDevice" },
      }),
    );
    expect(viaEnv.updated?.deviceId).toBe("otherDevice");
    const viaFlag = json<QueryOutput>(
      await run(
        "add-tags-and-query",
        ["--json", "--plant", "EnvPlant", "--device", "myDeviceId", "--env-file", t.envFile],
        {
          env: { IOTHUB_DEVICE_ID: "otherDevice" },
        },
      ),
    );
    expect(viaFlag.updated?.deviceId).toBe("myDeviceId");
    expect(viaFlag.inPlant.sort()).toEqual(["myDeviceId", "otherDevice"]);
  });

  it("reads ./.env from the working directory and tolerates copy-paste quotes and blanks", async () => {
    const { hub } = t;
    t.writeEnv(".env", [
      `IOTHUB_CONNECTION_STRING=" ${hub.serviceConnectionString.replaceAll(";", " ; ")};  "`,
      `IOTHUB_CA_FILE=data/ca.pem`,
      "IOTHUB_DEVICE_ID=myDeviceId",
    ]);
    const result = await run("add-tags-and-query", ["--json"], { cwd: t.dir });
    expect(result.code, result.stderr).toBe(0);
    expect(json<QueryOutput>(result).inPlant).toContain("myDeviceId");
  });

  it("matches the flat reported form of the Python sample too (connectivity: 'cellular')", async () => {
    await registerDevice(t.registry, "pythonDevice");
    await run("add-tags-and-query", [
      "--device",
      "pythonDevice",
      "--plant",
      "FlatPlant",
      "--env-file",
      t.envFile,
    ]);
    const { createDeviceClient } = await import("../../src/sdk/index.js");
    const { parseDeviceConnectionString } = await import("../../src/config/index.js");
    const client = await createDeviceClient(
      parseDeviceConnectionString(t.hub.deviceConnectionString("pythonDevice"), { name: "test" }),
      t.hub.caPem,
    );
    await client.open();
    try {
      const twin = await client.getTwin();
      await new Promise<void>((resolve, reject) =>
        twin.properties.reported.update({ connectivity: "cellular" }, (err?: Error) =>
          err ? reject(err) : resolve(),
        ),
      );
    } finally {
      await client.close();
    }
    const output = json<QueryOutput>(
      await run("add-tags-and-query", [
        "--no-update",
        "--plant",
        "FlatPlant",
        "--json",
        "--env-file",
        t.envFile,
      ]),
    );
    expect(output.inPlant).toEqual(["pythonDevice"]);
    expect(output.inPlantCellular).toEqual(["pythonDevice"]);
  });

  it("--wait polls and reports the results as consistent", async () => {
    const result = await run("add-tags-and-query", ["--wait", "5", "--json", "--env-file", t.envFile]);
    expect(result.code, result.stderr).toBe(0);
    expect(json<QueryOutput>(result).consistent).toBe(true);
    expect(result.stderr).not.toContain("eventually consistent");
  });

  it("--verbose shows progress on stderr without any key", async () => {
    const result = await run("add-tags-and-query", ["--verbose", "--env-file", t.envFile]);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(
      /^\[verbose\] {3}IOTHUB_CONNECTION_STRING {2}HostName=localhost:\d+;SharedAccessKeyName=iothubowner \(key not shown\) {2}\[env file .*\]$/m,
    );
    expect(result.stderr).toContain("Query: SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'");
    expect(result.stderr).not.toContain("SharedAccessKey=");
    expect(result.stderr).not.toContain("bG9jYWwtaHVi");
  });
});
