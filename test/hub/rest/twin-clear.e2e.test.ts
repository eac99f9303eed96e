import type { Client as DeviceClient, Twin as DeviceTwin } from "azure-iot-device";
import type { Registry } from "azure-iothub";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TwinDocument } from "../../../src/hub/twin/types.js";
import { rest, serviceToken } from "../../reliability/support.js";
import { connectDevice, eventually, registryFor, startTestHub, twinOf } from "../support.js";

type Hub = Awaited<ReturnType<typeof startTestHub>>;

/** The device's desired properties without $version, as the device SDK holds them after merging patches. */
function desiredOf(twin: DeviceTwin): Record<string, unknown> {
  const { $version: _v, ...rest } = twin.properties.desired as Record<string, unknown>;
  return JSON.parse(JSON.stringify(rest));
}

/**
 * Item: `{"properties":{"desired":null}}` clears every desired property (the Node SDK's twin e2e suite does
 * this), and the device, which merges patches, ends with the right desired state after PATCH-null and PUT.
 */
describe("clearing and replacing desired properties, service SDK to device SDK", () => {
  let hub: Hub;
  let registry: Registry;
  let device: DeviceClient;
  let deviceTwin: DeviceTwin;
  const id = "clear-desired";

  beforeAll(async () => {
    hub = await startTestHub({ inMemory: true });
    registry = registryFor(hub.serviceConnectionString, hub.caPem);
    await registry.create({ deviceId: id });
    device = await connectDevice(hub.deviceConnectionString(id), hub.caPem);
    deviceTwin = await device.getTwin();
    // listening for desired changes makes the SDK subscribe and merge every patch it receives
    const patches: unknown[] = [];
    deviceTwin.on("properties.desired", (patch: unknown) => patches.push(patch));
    await eventually(() => (patches.length > 0 ? true : undefined));
  });
  afterAll(async () => {
    await device?.close();
    await hub.cleanup();
  });

  it("PATCH desired: null empties desired on the hub and on the device", async () => {
    const { responseBody: twin } = await registry.getTwin(id);
    await twin.update({ properties: { desired: { fw: "1.0", cfg: { a: 1, b: { c: 2 } } } } });
    await eventually(() => (desiredOf(deviceTwin).fw === "1.0" ? true : undefined));

    // exactly what the Node SDK's e2e test "can null out all desired properties" sends
    await twin.update({ properties: { desired: null } });
    const after = await twinOf(registry, id);
    const { $metadata: _m, $version: version, ...props } = after.properties.desired;
    expect(props).toEqual({});
    expect(version).toBe(3);
    // the device received nulls for fw and cfg and merged them away
    await eventually(() => (Object.keys(desiredOf(deviceTwin)).length === 0 ? true : undefined));
    expect(desiredOf(deviceTwin)).toEqual({});
  });

  it("PUT /twins replaces desired: keys that disappear reach the device as null, nested ones too", async () => {
    const { responseBody: twin } = await registry.getTwin(id);
    await twin.update({ properties: { desired: { keep: 1, drop: 2, nest: { x: 1, y: 2 } } } });
    await eventually(() => (desiredOf(deviceTwin).drop === 2 ? true : undefined));
    const current = await twinOf(registry, id);
    // azure-iothub never sends PUT /twins/{id} (the C# and Java SDKs' ReplaceTwin do): a raw request
    const put = await rest(hub, "PUT", `/twins/${id}`, {
      auth: serviceToken(hub),
      headers: { "if-match": `"${current.etag}"` },
      body: JSON.stringify({ properties: { desired: { keep: 1, nest: { x: 1 }, added: true } } }),
    });
    expect(put.status, put.body).toBe(200);
    const expected = { keep: 1, nest: { x: 1 }, added: true };
    await eventually(() => (desiredOf(deviceTwin).added === true ? true : undefined));
    expect(desiredOf(deviceTwin)).toEqual(expected);
    const { $metadata: _m, $version: _v, ...props } = (await twinOf(registry, id)).properties.desired;
    expect(props).toEqual(expected);
  });

  it("PUT of a whole twin as GET returned it (what C#/Java ReplaceTwin send) is accepted, read-only fields ignored", async () => {
    const whole = (await rest(hub, "GET", `/twins/${id}`, { auth: serviceToken(hub) })).json<TwinDocument>();
    expect(whole.parentScopes).toEqual([]);
    expect(whole.capabilities).toEqual({ iotEdge: false });
    const body = { ...whole, tags: { replaced: true } };
    const put = await rest(hub, "PUT", `/twins/${id}`, {
      auth: serviceToken(hub),
      body: JSON.stringify(body),
    });
    expect(put.status, put.body).toBe(200);
    expect((await twinOf(registry, id)).tags).toEqual({ replaced: true });
  });

  it("tags: null clears every tag; properties.desired of another type is refused with 400", async () => {
    const { responseBody: twin } = await registry.getTwin(id);
    await twin.update({ tags: { a: 1, b: { c: 1 } } });
    await twin.update({ tags: null });
    expect((await twinOf(registry, id)).tags).toEqual({});
    const token = serviceToken(hub);
    const bad = await rest(hub, "PATCH", `/twins/${id}`, {
      auth: token,
      body: JSON.stringify({ properties: { desired: [1] } }),
    });
    expect(bad.status).toBe(400);
  });
});
