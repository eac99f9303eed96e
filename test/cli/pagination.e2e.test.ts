import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { json, registerDevice, run, startTestHub, type TestHub } from "./support.js";

interface QueryOutput {
  inPlant: string[];
  inPlantCellular: string[];
  pages: { inPlant: number; inPlantCellular: number };
  statistics: { totalDeviceCount: number };
}

const PLANT = "PagePlant";
const IDS = ["page-1", "page-2", "page-3", "page-4", "page-5"];

describe("queries over more devices than one page", () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub();
    for (const id of IDS) {
      await registerDevice(t.registry, id);
      await t.registry.updateTwin(id, { tags: { location: { region: "US", plant: PLANT } } }, "*");
    }
    // Three of them report cellular connectivity, through the device tool itself.
    const results = await Promise.all(
      IDS.slice(0, 3).map((id) => {
        const envFile = t.writeEnv(`${id}.env`, [
          `IOTHUB_DEVICE_CONNECTION_STRING=${t.hub.deviceConnectionString(id)}`,
          `IOTHUB_CA_FILE=${t.hub.caFile}`,
        ]);
        return run("report-connectivity", ["--once", "--env-file", envFile]);
      }),
    );
    for (const result of results) expect(result.code, result.stderr).toBe(0);
  });
  afterAll(async () => {
    await t.close();
  });

  it("follows the continuation pages to the end with --page-size 2", async () => {
    const result = await run("add-tags-and-query", [
      "--no-update",
      "--plant",
      PLANT,
      "--page-size",
      "2",
      "--json",
      "--env-file",
      t.envFile,
    ]);
    expect(result.code, result.stderr).toBe(0);
    const output = json<QueryOutput>(result);
    expect(output.statistics.totalDeviceCount).toBe(6);
    expect([...output.inPlant].sort()).toEqual(IDS);
    expect([...output.inPlantCellular].sort()).toEqual(IDS.slice(0, 3));
    expect(output.pages).toEqual({ inPlant: 3, inPlantCellular: 2 });
  });

  it("counts the updated device as well, and prints all of them", async () => {
    const result = await run("add-tags-and-query", [
      "--plant",
      PLANT,
      "--page-size",
      "1",
      "--env-file",
      t.envFile,
    ]);
    expect(result.code, result.stderr).toBe(0);
    const line = result.stdout.match(/^Devices in PagePlant: (.*)$/m)?.[1] ?? "";
    expect(line.split(", ").sort()).toEqual([...IDS, "myDeviceId"].sort());
    const cellular = result.stdout.match(/^Devices in PagePlant using cellular network: (.*)$/m)?.[1] ?? "";
    expect(cellular.split(", ").sort()).toEqual(IDS.slice(0, 3));
  });

  it("uses one page when the page is big enough", async () => {
    const output = json<QueryOutput>(
      await run("add-tags-and-query", [
        "--no-update",
        "--plant",
        PLANT,
        "--page-size",
        "100",
        "--json",
        "--env-file",
        t.envFile,
      ]),
    );
    expect(output.pages).toEqual({ inPlant: 1, inPlantCellular: 1 });
    expect(output.inPlant).toHaveLength(6);
  });
});
