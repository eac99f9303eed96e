import type { Registry } from "azure-iothub";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeToken } from "../../../src/hub/auth/sas.js";
import { inAnHour, mqttLogin, rest, serviceToken } from "../../reliability/support.js";
import { connectDevice, registryFor, sdkErrorOf, startTestHub, twinOf } from "../support.js";

type Hub = Awaited<ReturnType<typeof startTestHub>>;

const sas = {
  symmetricKey: {
    primaryKey: Buffer.from("1234567890qwerty").toString("base64"),
    secondaryKey: Buffer.from("ytrewq0987654321").toString("base64"),
  },
};

// biome-ignore lint/suspicious/noExplicitAny: identities carry fields the SDK's Device type does not declare
type AnyDevice = any;

describe("identity registry: edge devices, scopes, X.509 identities, field limits (azure-iothub)", () => {
  let hub: Hub;
  let registry: Registry;

  beforeAll(async () => {
    hub = await startTestHub({ inMemory: true });
    registry = registryFor(hub.serviceConnectionString, hub.caPem);
  });
  afterAll(() => hub.cleanup());

  it("an edge device gets a generated scope; a leaf device can take it; the scope is then checked (Node SDK e2e)", async () => {
    const edge: AnyDevice = (
      await registry.create({
        deviceId: "edge-1",
        authentication: sas,
        status: "enabled",
        capabilities: { iotEdge: true },
      } as AnyDevice)
    ).responseBody;
    expect(edge.capabilities.iotEdge).toBe(true);
    expect(edge.deviceScope).toMatch(/^ms-azure-iot-edge:\/\/edge-1-\d+$/);

    const leaf: AnyDevice = (
      await registry.create({
        deviceId: "leaf-1",
        authentication: sas,
        status: "enabled",
        deviceScope: edge.deviceScope,
      } as AnyDevice)
    ).responseBody;
    expect(leaf.deviceScope).toBe(edge.deviceScope);
    expect(leaf.parentScopes).toEqual([edge.deviceScope]);
    expect((await twinOf(registry, "leaf-1")).deviceScope).toBe(edge.deviceScope);

    // the Node SDK e2e suite sets a random scope on the leaf and expects the update to fail
    leaf.deviceScope = "3f1c2b9e-0d47-4b8a-9d2c-5e6f7a8b9c0d";
    expect(await sdkErrorOf(registry.update(leaf))).toBe("ArgumentError");
    // a scope shaped like an edge scope but naming no edge device is refused too
    expect(
      await sdkErrorOf(
        registry.create({ deviceId: "leaf-2", deviceScope: "ms-azure-iot-edge://nobody-123" } as AnyDevice),
      ),
    ).toBe("ArgumentError");
    // the edge device's own scope cannot be changed
    const again: AnyDevice = (await registry.get("edge-1")).responseBody;
    expect(again.deviceScope).toBe(edge.deviceScope);
    again.deviceScope = "ms-azure-iot-edge://edge-1-1";
    expect(await sdkErrorOf(registry.update(again))).toBe("ArgumentError");
    // sent back unchanged, it is accepted
    const unchanged: AnyDevice = (await registry.get("edge-1")).responseBody;
    unchanged.status = "disabled";
    expect(((await registry.update(unchanged)).responseBody as AnyDevice).deviceScope).toBe(edge.deviceScope);
  });

  it("nested edge devices: parentScopes names the parent edge; cycles and unknown parents are refused", async () => {
    const root: AnyDevice = (
      await registry.create({ deviceId: "root-edge", capabilities: { iotEdge: true } } as AnyDevice)
    ).responseBody;
    const child: AnyDevice = (
      await registry.create({
        deviceId: "child-edge",
        capabilities: { iotEdge: true },
        parentScopes: [root.deviceScope],
      } as AnyDevice)
    ).responseBody;
    expect(child.deviceScope).toMatch(/^ms-azure-iot-edge:\/\/child-edge-\d+$/);
    expect(child.parentScopes).toEqual([root.deviceScope]);
    const leaf: AnyDevice = (
      await registry.create({
        deviceId: "nested-leaf",
        deviceScope: child.deviceScope,
        parentScopes: [child.deviceScope],
      } as AnyDevice)
    ).responseBody;
    expect(leaf.parentScopes).toEqual([child.deviceScope]);
    // root under its own child: a cycle
    const rootAgain: AnyDevice = (await registry.get("root-edge")).responseBody;
    rootAgain.parentScopes = [child.deviceScope];
    expect(await sdkErrorOf(registry.update(rootAgain))).toBe("ArgumentError");
    expect(
      await sdkErrorOf(
        registry.create({
          deviceId: "orphan-edge",
          capabilities: { iotEdge: true },
          parentScopes: ["ms-azure-iot-edge://ghost-1"],
        } as AnyDevice),
      ),
    ).toBe("ArgumentError");
  });

  it("X.509 identities: thumbprints stored and returned (Node SDK e2e), CA devices, invalid thumbprints refused", async () => {
    const withThumbprints = {
      deviceId: "x509-self",
      authentication: {
        x509Thumbprint: {
          primaryThumbprint: "0000000000000000000000000000000000000000",
          secondaryThumbprint: "1111111111111111111111111111111111111111",
        },
      },
      status: "disabled",
    } as AnyDevice;
    await registry.create(withThumbprints);
    const got: AnyDevice = (await registry.get("x509-self")).responseBody;
    expect(got.authentication.type).toBe("selfSigned");
    expect(got.authentication.x509Thumbprint).toEqual(withThumbprints.authentication.x509Thumbprint);
    expect(got.authentication.symmetricKey).toEqual({ primaryKey: null, secondaryKey: null });
    const twin = await twinOf(registry, "x509-self");
    expect(twin.authenticationType).toBe("selfSigned");
    expect(twin.x509Thumbprint.primaryThumbprint).toBe("0000000000000000000000000000000000000000");

    const sha256 = "AB".repeat(32);
    const ca: AnyDevice = (
      await registry.create({
        deviceId: "x509-ca",
        authentication: { type: "certificateAuthority" },
      } as AnyDevice)
    ).responseBody;
    expect(ca.authentication.type).toBe("certificateAuthority");
    await registry.create({
      deviceId: "x509-256",
      authentication: { type: "selfSigned", x509Thumbprint: { primaryThumbprint: sha256 } },
    } as AnyDevice);

    for (const bad of ["0000", "zz".repeat(20), "0".repeat(41)]) {
      expect(
        await sdkErrorOf(
          registry.create({
            deviceId: "x509-bad",
            authentication: { x509Thumbprint: { primaryThumbprint: bad } },
          } as AnyDevice),
        ),
      ).toBe("ArgumentError");
    }
    // a secondary thumbprint alone is enough; a SHA-1 next to a SHA-256 is not
    await registry.create({
      deviceId: "x509-second",
      authentication: { type: "selfSigned", x509Thumbprint: { secondaryThumbprint: sha256 } },
    } as AnyDevice);
    expect(
      await sdkErrorOf(
        registry.create({
          deviceId: "x509-bad",
          authentication: {
            x509Thumbprint: { primaryThumbprint: sha256, secondaryThumbprint: "1".repeat(40) },
          },
        } as AnyDevice),
      ),
    ).toBe("ArgumentError");
    // selfSigned needs a thumbprint; sas cannot carry thumbprints
    expect(
      await sdkErrorOf(
        registry.create({ deviceId: "x509-bad", authentication: { type: "selfSigned" } } as AnyDevice),
      ),
    ).toBe("ArgumentError");
    expect(
      await sdkErrorOf(
        registry.create({
          deviceId: "x509-bad",
          authentication: { type: "sas", x509Thumbprint: { primaryThumbprint: sha256 } },
        } as AnyDevice),
      ),
    ).toBe("ArgumentError");
  });

  it("an X.509 device cannot log in with SAS, not even with a token signed by an empty key", async () => {
    await registry.create({
      deviceId: "x509-login",
      authentication: { type: "certificateAuthority" },
    } as AnyDevice);
    const token = makeToken("", `${hub.hostName}/devices/x509-login`, inAnHour());
    const outcome = await mqttLogin(hub, "x509-login", token);
    expect(outcome).toMatchObject({ ok: false, returnCode: 5 });
    // and a SAS device next to it still logs in
    await registry.create({ deviceId: "sas-login", authentication: sas } as AnyDevice);
    const device = await connectDevice(
      `HostName=${hub.hostName};DeviceId=sas-login;SharedAccessKey=${sas.symmetricKey.primaryKey}`,
      hub.caPem,
    );
    await device.close();
  });

  it("statusReason holds at most 128 characters (identity registry doc)", async () => {
    await registry.create({ deviceId: "reason-ok", statusReason: "é".repeat(128) } as AnyDevice);
    expect(((await registry.get("reason-ok")).responseBody as AnyDevice).statusReason).toBe("é".repeat(128));
    const tooLong = await rest(hub, "PUT", "/devices/reason-long", {
      auth: serviceToken(hub),
      body: JSON.stringify({ deviceId: "reason-long", statusReason: "x".repeat(129) }),
    });
    expect(tooLong.status).toBe(400);
    const huge = await rest(hub, "PUT", "/devices/reason-long", {
      auth: serviceToken(hub),
      body: JSON.stringify({ deviceId: "reason-long", statusReason: "x".repeat(200_000) }),
    });
    expect(huge.status).toBe(400);
    expect(await sdkErrorOf(registry.get("reason-long"))).toBe("DeviceNotFoundError");
  });
});

describe("bulk registry operations (POST /devices): every importMode, per-device errors", () => {
  let hub: Hub;
  let registry: Registry;

  beforeAll(async () => {
    hub = await startTestHub({ inMemory: true });
    registry = registryFor(hub.serviceConnectionString, hub.caPem);
  });
  afterAll(() => hub.cleanup());

  const ids = ["bulk-a", "bulk-b", "bulk-c"];

  it("addDevices / updateDevices / removeDevices, as the Node SDK's registry e2e suite runs them", async () => {
    const added = await registry.addDevices(
      ids.map((deviceId) => ({ deviceId, status: "disabled" }) as AnyDevice),
    );
    expect(added.responseBody).toEqual({ isSuccessful: true, errors: [], warnings: [] });
    for (const id of ids) expect((await registry.get(id)).responseBody.status).toBe("disabled");
    const keyBefore = (await registry.get("bulk-a")).responseBody.authentication?.symmetricKey?.primaryKey;

    const updated = await registry.updateDevices(
      ids.map((deviceId) => ({ deviceId, status: "enabled" }) as AnyDevice),
      true,
    );
    expect(updated.responseBody.isSuccessful).toBe(true);
    for (const id of ids) expect((await registry.get(id)).responseBody.status).toBe("enabled");
    // the SDK sends empty keys with an update: the device keeps its keys
    expect((await registry.get("bulk-a")).responseBody.authentication?.symmetricKey?.primaryKey).toBe(
      keyBefore,
    );

    const removed = await registry.removeDevices(
      ids.map((deviceId) => ({ deviceId }) as AnyDevice),
      true,
    );
    expect(removed.responseBody.isSuccessful).toBe(true);
    for (const id of ids) expect(await sdkErrorOf(registry.get(id))).toBe("DeviceNotFoundError");
  });

  it("per-device errors come back in IoT Hub's bulk result shape; the other devices are processed", async () => {
    await registry.create({ deviceId: "bulk-exists" });
    const result = (
      await registry.addDevices([{ deviceId: "bulk-new" }, { deviceId: "bulk-exists" }] as AnyDevice)
    ).responseBody as AnyDevice;
    expect(result.isSuccessful).toBe(false);
    expect(result.errors).toEqual([
      {
        deviceId: "bulk-exists",
        errorCode: "DeviceAlreadyExists",
        errorStatus: expect.stringContaining("bulk-exists"),
      },
    ]);
    expect(result.warnings).toEqual([]);
    expect((await registry.get("bulk-new")).responseBody.deviceId).toBe("bulk-new");

    // updateDevices(force = false) is UpdateIfMatchETag: a stale etag fails that device only
    const current = (await registry.get("bulk-new")).responseBody;
    const stale = (
      await registry.updateDevices(
        [
          { deviceId: "bulk-new", status: "disabled", etag: current.etag },
          { deviceId: "bulk-exists", status: "disabled", etag: "c3RhbGU=" },
          { deviceId: "bulk-missing", status: "disabled", etag: "c3RhbGU=" },
        ] as AnyDevice,
        false,
      )
    ).responseBody as AnyDevice;
    expect(stale.errors.map((e: AnyDevice) => [e.deviceId, e.errorCode])).toEqual([
      ["bulk-exists", "PreconditionFailed"],
      ["bulk-missing", "DeviceNotFound"],
    ]);
    expect((await registry.get("bulk-new")).responseBody.status).toBe("disabled");
    expect((await registry.get("bulk-exists")).responseBody.status).toBe("enabled");

    // removeDevices(force = false) is DeleteIfMatchETag
    const del = (
      await registry.removeDevices([{ deviceId: "bulk-exists", etag: "c3RhbGU=" }] as AnyDevice, false)
    ).responseBody as AnyDevice;
    expect(del.errors[0]).toMatchObject({ deviceId: "bulk-exists", errorCode: "PreconditionFailed" });
    expect((await registry.get("bulk-exists")).responseBody.deviceId).toBe("bulk-exists");
  });

  it("createOrUpdate(IfMatchETag), updateTwin(IfMatchETag) and delete, sent raw as the C# SDK sends them", async () => {
    const auth = serviceToken(hub);
    const post = (items: unknown[]) => rest(hub, "POST", "/devices", { auth, body: JSON.stringify(items) });
    const first = await post([
      {
        id: "imp-1",
        importMode: "CreateOrUpdate",
        status: "enabled",
        tags: { site: "A" },
        properties: { desired: { fw: "1" } },
      },
      { id: "imp-2", importMode: "createOrUpdate" },
    ]);
    expect(first.status).toBe(200);
    expect(first.json()).toEqual({ isSuccessful: true, errors: [], warnings: [] });
    const twin1 = await twinOf(registry, "imp-1");
    expect(twin1.tags).toEqual({ site: "A" });
    expect(twin1.properties.desired.fw).toBe("1");

    const etag = (await registry.get("imp-2")).responseBody.etag;
    const second = await post([
      { id: "imp-1", importMode: "createOrUpdate", status: "disabled" },
      { id: "imp-2", importMode: "createOrUpdateIfMatchETag", eTag: "c3RhbGU=", status: "disabled" },
      { id: "imp-3", importMode: "createOrUpdateIfMatchETag", status: "enabled" },
      { id: "imp-1", importMode: "updateTwin", tags: { site: "B" } },
    ]);
    // the same device twice in one list is refused whole
    expect(second.status).toBe(400);
    const third = await post([
      { id: "imp-1", importMode: "createOrUpdate", status: "disabled" },
      { id: "imp-2", importMode: "createOrUpdateIfMatchETag", eTag: "c3RhbGU=", status: "disabled" },
      { id: "imp-3", importMode: "createOrUpdateIfMatchETag", status: "enabled" },
    ]);
    expect(third.json<AnyDevice>().errors).toEqual([
      { deviceId: "imp-2", errorCode: "PreconditionFailed", errorStatus: expect.any(String) },
    ]);
    expect((await registry.get("imp-1")).responseBody.status).toBe("disabled");
    expect((await registry.get("imp-2")).responseBody.etag).toBe(etag);
    expect((await registry.get("imp-3")).responseBody.status).toBe("enabled");

    const twinEtag = (await twinOf(registry, "imp-1")).etag;
    const twins = await post([
      { id: "imp-1", importMode: "updateTwinIfMatchETag", twinETag: twinEtag, tags: { site: "B" } },
      { id: "imp-3", importMode: "updateTwinIfMatchETag", twinETag: "AAAAAAAAAAk=", tags: { site: "C" } },
      { id: "imp-2", importMode: "updateTwin", properties: { desired: { fw: "2" } } },
      { id: "imp-none", importMode: "updateTwin", tags: { site: "D" } },
    ]);
    expect(twins.json<AnyDevice>().errors.map((e: AnyDevice) => [e.deviceId, e.errorCode])).toEqual([
      ["imp-3", "PreconditionFailed"],
      ["imp-none", "DeviceNotFound"],
    ]);
    expect((await twinOf(registry, "imp-1")).tags).toEqual({ site: "B" });
    expect((await twinOf(registry, "imp-3")).tags).toEqual({});
    expect((await twinOf(registry, "imp-2")).properties.desired.fw).toBe("2");

    const gone = await post([
      { id: "imp-1", importMode: "delete" },
      { id: "imp-2", importMode: "deleteIfMatchETag", eTag: `"${etag}"` },
      { id: "imp-404", importMode: "delete" },
    ]);
    expect(gone.json<AnyDevice>().errors.map((e: AnyDevice) => [e.deviceId, e.errorCode])).toEqual([
      ["imp-404", "DeviceNotFound"],
    ]);
    expect(await sdkErrorOf(registry.get("imp-1"))).toBe("DeviceNotFoundError");
    expect(await sdkErrorOf(registry.get("imp-2"))).toBe("DeviceNotFoundError");
  });

  it("a request that is malformed as a whole is refused with 400 and changes nothing", async () => {
    const auth = serviceToken(hub);
    const post = (body: unknown) => rest(hub, "POST", "/devices", { auth, body: JSON.stringify(body) });
    for (const body of [
      [{ id: "w-1", importMode: "teleport" }],
      [
        { id: "w-1", importMode: "create" },
        { id: "bad id", importMode: "create" },
      ],
      [{ id: "w-1" }, { id: "w-1" }],
      Array.from({ length: 101 }, (_, i) => ({ id: `w-${i}` })),
    ]) {
      const answer = await post(body);
      expect(answer.status).toBe(400);
      expect(answer.headers["iothub-errorcode"]).toBe("ArgumentInvalid");
    }
    expect(await sdkErrorOf(registry.get("w-1"))).toBe("DeviceNotFoundError");
  });
});
