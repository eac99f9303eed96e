import type { Registry } from "azure-iothub";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TwinDocument } from "../../src/hub/twin/types.js";
import { registryFor, sdkErrorOf, startTestHub, twinOf } from "./support.js";

type Hub = Awaited<ReturnType<typeof startTestHub>>;

describe("local hub service side, through the real azure-iothub Registry", () => {
  let hub: Hub;
  let registry: Registry;

  beforeAll(async () => {
    hub = await startTestHub();
    registry = registryFor(hub.serviceConnectionString, hub.caPem);
  });
  afterAll(() => hub.cleanup());

  it("registers the tutorial device on first start", async () => {
    const { responseBody } = await registry.get("myDeviceId");
    expect(responseBody.deviceId).toBe("myDeviceId");
    expect(responseBody.status).toBe("enabled");
    expect(responseBody.authentication?.symmetricKey?.primaryKey).toMatch(/^[A-Za-z0-9+/]+=*$/);
  });

  it("creates a device with generated keys, lists it and counts it", async () => {
    const { responseBody: created } = await registry.create({ deviceId: "svc-dev-1" });
    const key = created.authentication?.symmetricKey?.primaryKey ?? "";
    expect(Buffer.from(key, "base64").length).toBe(32);
    expect(created.authentication?.symmetricKey?.secondaryKey).not.toBe(key);
    const { responseBody: list } = await registry.list();
    expect(list.map((d) => d.deviceId)).toContain("svc-dev-1");
    const { responseBody: stats } = await registry.getRegistryStatistics();
    expect(stats.totalDeviceCount).toBe(list.length);
    expect(stats.enabledDeviceCount + stats.disabledDeviceCount).toBe(stats.totalDeviceCount);
  });

  it("refuses a duplicate device with DeviceAlreadyExistsError", async () => {
    await registry.create({ deviceId: "svc-dup" });
    expect(await sdkErrorOf(registry.create({ deviceId: "svc-dup" }))).toBe("DeviceAlreadyExistsError");
  });

  it("updates status and counts disabled devices", async () => {
    await registry.create({ deviceId: "svc-disable" });
    const before = (await registry.getRegistryStatistics()).responseBody;
    const { responseBody: updated } = await registry.update({ deviceId: "svc-disable", status: "disabled" });
    expect(updated.status).toBe("disabled");
    const after = (await registry.getRegistryStatistics()).responseBody;
    expect(after.disabledDeviceCount).toBe(before.disabledDeviceCount + 1);
    expect(after.enabledDeviceCount).toBe(before.enabledDeviceCount - 1);
  });

  it("deletes a device; getting it then raises DeviceNotFoundError", async () => {
    await registry.create({ deviceId: "svc-delete" });
    await registry.delete("svc-delete");
    expect(await sdkErrorOf(registry.get("svc-delete"))).toBe("DeviceNotFoundError");
    expect(await sdkErrorOf(registry.getTwin("svc-delete"))).toBe("DeviceNotFoundError");
  });

  it("patches a twin with its etag: merge, null deletes, versions and metadata move", async () => {
    await registry.create({ deviceId: "svc-twin" });
    const twin0 = await twinOf(registry, "svc-twin");
    expect(twin0.properties.desired.$version).toBe(1);
    const twin1 = (
      await registry.updateTwin(
        "svc-twin",
        {
          tags: { location: { region: "US", plant: "Redmond43" } },
          properties: { desired: { location: "Redmond43", old: 1 } },
        },
        twin0.etag,
      )
    ).responseBody as unknown as TwinDocument;
    expect(twin1.tags).toEqual({ location: { region: "US", plant: "Redmond43" } });
    expect(twin1.properties.desired.location).toBe("Redmond43");
    expect(twin1.properties.desired.$version).toBe(2);
    expect(twin1.version).toBeGreaterThan(twin0.version);
    expect(twin1.etag).not.toBe(twin0.etag);
    const meta = twin1.properties.desired.$metadata as Record<
      string,
      { $lastUpdated: string; $lastUpdatedVersion: number }
    >;
    expect(meta.location.$lastUpdatedVersion).toBe(2);
    expect(Number.isNaN(Date.parse(meta.location.$lastUpdated))).toBe(false);

    const { responseBody: twin2 } = await registry.updateTwin(
      "svc-twin",
      { tags: { location: { plant: null } }, properties: { desired: { old: null } } },
      twin1.etag,
    );
    expect(twin2.tags).toEqual({ location: { region: "US" } });
    expect(twin2.properties.desired.old).toBeUndefined();
    expect(twin2.properties.desired.$version).toBe(3);
  });

  it("answers a stale etag with InvalidEtagError and writes nothing", async () => {
    await registry.create({ deviceId: "svc-etag" });
    const { responseBody: twin0 } = await registry.getTwin("svc-etag");
    await registry.updateTwin("svc-etag", { tags: { a: 1 } }, twin0.etag);
    expect(await sdkErrorOf(registry.updateTwin("svc-etag", { tags: { a: 2 } }, twin0.etag))).toBe(
      "InvalidEtagError",
    );
    expect((await twinOf(registry, "svc-etag")).tags).toEqual({ a: 1 });
    // "*" matches any etag.
    await registry.updateTwin("svc-etag", { tags: { a: 3 } }, "*");
    expect((await twinOf(registry, "svc-etag")).tags).toEqual({ a: 3 });
  });

  it("rejects an over-limit patch whole with ArgumentError and writes nothing", async () => {
    await registry.create({ deviceId: "svc-limit" });
    const big = "x".repeat(4000);
    const tags: Record<string, string> = {};
    for (let i = 0; i < 3; i++) tags[`t${i}`] = big;
    expect(
      await sdkErrorOf(
        registry.updateTwin("svc-limit", { tags, properties: { desired: { ok: true } } }, "*"),
      ),
    ).toBe("ArgumentError");
    const { responseBody: twin } = await registry.getTwin("svc-limit");
    expect(twin.tags).toEqual({});
    expect(twin.properties.desired.ok).toBeUndefined();
    expect(twin.properties.desired.$version).toBe(1);
  });

  it("rejects over-deep patches and invalid property names", async () => {
    await registry.create({ deviceId: "svc-deep" });
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 11; i++) deep = { n: deep };
    expect(await sdkErrorOf(registry.updateTwin("svc-deep", { tags: deep }, "*"))).toBe("ArgumentError");
    expect(await sdkErrorOf(registry.updateTwin("svc-deep", { tags: { "bad.name": 1 } }, "*"))).toBe(
      "ArgumentError",
    );
    expect(await sdkErrorOf(registry.updateTwin("svc-deep", { tags: { $x: 1 } }, "*"))).toBe("ArgumentError");
    expect((await twinOf(registry, "svc-deep")).version).toBe(1);
  });

  it("refuses service updates of reported properties", async () => {
    await registry.create({ deviceId: "svc-reported" });
    expect(
      await sdkErrorOf(
        registry.updateTwin("svc-reported", { properties: { reported: { x: 1 } } } as never, "*"),
      ),
    ).toBe("ArgumentError");
  });

  it("queries with paging: every matching twin once", async () => {
    for (let i = 0; i < 7; i++) {
      await registry.create({ deviceId: `svc-q-${i}` });
      await registry.updateTwin(`svc-q-${i}`, { tags: { group: i % 2 === 0 ? "even" : "odd" } }, "*");
    }
    const query = registry.createQuery("SELECT * FROM devices WHERE tags.group = 'even'", 2);
    const seen: string[] = [];
    let pages = 0;
    do {
      const { result } = await query.nextAsTwin();
      pages++;
      seen.push(...result.map((t) => t.deviceId));
    } while (query.hasMoreResults);
    expect(seen.sort()).toEqual(["svc-q-0", "svc-q-2", "svc-q-4", "svc-q-6"]);
    expect(pages).toBe(2);
  });

  it("answers a malformed query with ArgumentError", async () => {
    const query = registry.createQuery("SELECT * FROM devices WHERE", 10);
    expect(await sdkErrorOf(query.next())).toBe("ArgumentError");
  });
});

describe("a hub with its own host name", () => {
  it("puts the name in connection strings and the certificate, and accepts tokens addressed to it", async () => {
    const { connect } = await import("node:tls");
    const hub = await startTestHub({ inMemory: true, hostName: "myhub.localtest" });
    try {
      expect(hub.serviceConnectionString).toMatch(/^HostName=myhub\.localtest:\d+;/);
      // The certificate covers the name (checked by a TLS client that asks for it).
      const socket = connect({
        host: "127.0.0.1",
        port: hub.port,
        servername: "myhub.localtest",
        ca: hub.caPem,
      });
      await new Promise<void>((resolve, reject) => {
        socket.once("secureConnect", () => resolve());
        socket.once("error", reject);
      });
      expect(socket.authorized).toBe(true);
      socket.destroy();
      // A service token addressed to the name is accepted.
      const { request } = await import("node:https");
      const { makeToken } = await import("../../src/hub/auth/sas.js");
      const owner = (await import("../../src/hub/auth/credentials.js")).DEV_POLICIES[0];
      const status = (resource: string) =>
        new Promise<number>((resolve, reject) => {
          const token = makeToken(owner.primaryKey, resource, Math.floor(Date.now() / 1000) + 60, owner.name);
          request(
            {
              host: "127.0.0.1",
              port: hub.port,
              servername: "myhub.localtest",
              ca: hub.caPem,
              path: "/statistics/devices?api-version=2021-04-12",
              headers: { authorization: token },
            },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          )
            .on("error", reject)
            .end();
        });
      expect(await status(`myhub.localtest:${hub.port}`)).toBe(200);
      expect(await status(`otherhub.localtest:${hub.port}`)).toBe(401);
    } finally {
      await hub.cleanup();
    }
  });
});
