import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  addTagsAndQuery,
  buildQueries,
  queryAll,
  updateLocation,
} from "../../src/backend/add-tags-and-query.js";
import { registerDevice, startTestHub, type TestHub } from "../cli/support.js";

describe("buildQueries", () => {
  it("builds the tutorial's two queries, the second accepting both reported forms", () => {
    expect(buildQueries("Redmond43", "cellular")).toEqual({
      inPlant: "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'",
      inPlantCellular:
        "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43' AND " +
        "(properties.reported.connectivity.type = 'cellular' OR properties.reported.connectivity = 'cellular')",
    });
  });

  it("refuses values that could change the query's meaning", () => {
    expect(() => buildQueries("x' OR 1=1 OR 'a", "cellular")).toThrow(/quotes/);
    expect(() => buildQueries("Redmond43", "a\\")).toThrow(/backslashes/);
  });
});

describe("the back-end logic against a local hub", () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub();
    for (const id of ["b1", "b2", "b3"]) await registerDevice(t.registry, id);
  });
  afterAll(async () => {
    await t.close();
  });

  it("retries on 412 when concurrent writers change the twin between read and write", async () => {
    // Eight read-modify-write cycles on one twin at once: they read the same etag, so all but one get 412
    // and must read again.
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        updateLocation(t.registry, { deviceId: "b1", plant: `P${i}`, region: "US", timeoutSeconds: 20 }),
      ),
    );
    expect(Math.max(...results.map((r) => r.attempts))).toBeGreaterThan(1);
    const versions = results.map((r) => r.version);
    expect(new Set(versions).size).toBe(8);
    const { responseBody } = await t.registry.getTwin("b1");
    const twin = responseBody as unknown as {
      etag: string;
      tags: { location: { plant: string } };
      properties: { desired: { location: string } };
    };
    const last = results.find((r) => r.version === Math.max(...versions))!;
    expect(twin.etag).toBe(last.etag);
    expect(twin.tags.location.plant).toMatch(/^P\d$/);
    expect(twin.properties.desired.location).toBe(twin.tags.location.plant);
  });

  it("follows continuation tokens page by page", async () => {
    for (const id of ["b1", "b2", "b3"]) {
      await t.registry.updateTwin(id, { tags: { location: { plant: "PagingPlant" } } }, "*");
    }
    const sql = buildQueries("PagingPlant", "cellular").inPlant;
    const one = await queryAll(t.registry, sql, 1, 10);
    expect(one.pages).toBe(3);
    expect(one.rows.map((r) => r.deviceId).sort()).toEqual(["b1", "b2", "b3"]);
    const all = await queryAll(t.registry, sql, undefined, 10);
    expect(all.pages).toBe(1);
    expect(all.rows).toHaveLength(3);
  });

  it("reports statistics, the new version, and whether the queries show it", async () => {
    const result = await addTagsAndQuery(t.registry, {
      deviceId: "b2",
      plant: "LogicPlant",
      region: "EU",
      connectivity: "cellular",
      update: true,
      waitSeconds: 0,
      timeoutSeconds: 10,
    });
    expect(result.statistics.totalDeviceCount).toBe(4);
    expect(result.updated?.deviceId).toBe("b2");
    const { responseBody: twin } = await t.registry.getTwin("b2");
    expect(result.updated?.version).toBe((twin as unknown as { version: number }).version);
    expect(result.inPlant).toEqual(["b2"]);
    expect(result.inPlantCellular).toEqual([]);
    expect(result.consistent).toBe(true);
  });

  it("fails with the SDK's DeviceNotFoundError for an unknown device", async () => {
    await expect(
      updateLocation(t.registry, { deviceId: "nobody", plant: "P", region: "R", timeoutSeconds: 10 }),
    ).rejects.toMatchObject({ name: "DeviceNotFoundError" });
  });
});
