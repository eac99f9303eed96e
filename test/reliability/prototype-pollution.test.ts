import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileQuery, runQueryPage } from "../../src/hub/query/index.js";
import type { TwinDocument } from "../../src/hub/twin/types.js";
import { eventually, startTestHub } from "../hub/support.js";
import { deviceToken, mqttLogin, rest, serviceToken, subscribe } from "./support.js";

type Hub = Awaited<ReturnType<typeof startTestHub>>;

/** Names Object.prototype has in a clean process: anything else means a patch reached it. */
const CLEAN_PROTOTYPE = Object.getOwnPropertyNames(Object.prototype).sort();
const prototypeIsClean = () =>
  JSON.stringify(Object.getOwnPropertyNames(Object.prototype).sort()) === JSON.stringify(CLEAN_PROTOTYPE) &&
  typeof Object.prototype.hasOwnProperty === "function" &&
  typeof Object.prototype.toString === "function";

/**
 * Prototype pollution through twin patches, sent as a hostile device (raw mqtt.js) and a hostile back end (raw
 * HTTPS) to a hub running in this process, so a polluted Object.prototype would show here. Each payload used to
 * reach Object.prototype through the twin merge: `{"__proto__":{"hasOwnProperty":null}}` killed the hub, and
 * `{"__proto__":{"location":{"plant":{}}}}` made every twin match IS_DEFINED(tags.location).
 */
describe("prototype pollution: refused at the root, for every protocol", () => {
  let hub: Hub;
  let owner: string;
  let device: MqttClient;
  const answers = new Map<string, { status: number; body: string }>();
  let rid = 0;

  /** Publishes a reported patch and resolves with the status on the response topic. */
  const report = async (payload: string) => {
    const id = `pp-${++rid}`;
    device.publish(`$iothub/twin/PATCH/properties/reported/?$rid=${id}`, payload, { qos: 0 });
    return eventually(() => answers.get(id), 10_000);
  };

  const query = async (text: string) => {
    const answer = await rest(hub, "POST", "/devices/query", {
      auth: owner,
      body: JSON.stringify({ query: text }),
    });
    expect(answer.status).toBe(200);
    return answer.json<Array<{ deviceId: string }>>().map((r) => r.deviceId);
  };

  beforeAll(async () => {
    hub = await startTestHub({ inMemory: true });
    owner = serviceToken(hub);
    for (const id of ["pp-attacker", "pp-bystander", "pp-located"]) {
      const created = await rest(hub, "PUT", `/devices/${id}`, {
        auth: owner,
        body: JSON.stringify({ deviceId: id }),
      });
      expect(created.status).toBe(200);
    }
    await rest(hub, "PATCH", "/twins/pp-located", {
      auth: owner,
      body: JSON.stringify({ tags: { location: { plant: "Redmond43" } } }),
    });
    const identity = await rest(hub, "GET", "/devices/pp-attacker", { auth: owner });
    const key = identity.json<{ authentication: { symmetricKey: { primaryKey: string } } }>().authentication
      .symmetricKey.primaryKey;
    const login = await mqttLogin(hub, "pp-attacker", deviceToken(hub, "pp-attacker", key));
    if (!login.ok) throw new Error(login.reason);
    device = login.client;
    device.on("message", (topic, payload) => {
      const m = /^\$iothub\/twin\/res\/(\d+)\/\?\$rid=([^&]+)/.exec(topic);
      if (m) answers.set(m[2]!, { status: Number(m[1]), body: payload.toString() });
    });
    await subscribe(device, "$iothub/twin/res/#");
  });
  afterAll(async () => {
    device?.end(true);
    await hub.cleanup();
  });

  it("MQTT {__proto__: {hasOwnProperty: null}} is refused with 400 and the hub keeps serving", async () => {
    const answer = await report('{"__proto__":{"hasOwnProperty":null}}');
    expect(answer.status).toBe(400);
    expect(answer.body).toMatch(/__proto__/);
    expect(prototypeIsClean()).toBe(true);
    // the same device keeps working, and the service side too
    expect((await report('{"ok":1}')).status).toBe(204);
    const twin = await rest(hub, "GET", "/twins/pp-attacker", { auth: owner });
    expect(twin.json<TwinDocument>().properties.reported.ok).toBe(1);
  });

  it("MQTT {__proto__: {location: ...}} is refused; IS_DEFINED(tags.location) still matches only the located twin", async () => {
    expect((await report('{"__proto__":{"location":{"plant":{}}}}')).status).toBe(400);
    expect((await report('{"deep":{"__proto__":{"location":{"plant":{}}}}}')).status).toBe(400);
    expect(prototypeIsClean()).toBe(true);
    expect(await query("SELECT deviceId FROM devices WHERE IS_DEFINED(tags.location)")).toEqual([
      "pp-located",
    ]);
    const bystander = await rest(hub, "GET", "/twins/pp-bystander", { auth: owner });
    expect(bystander.json<TwinDocument>().tags).toEqual({});
  });

  it("'constructor' and 'prototype' are ordinary property names (IoT Hub allows them): stored as data, nothing else", async () => {
    const answer = await report('{"constructor":{"prototype":{"polluted":1}},"prototype":{"x":1}}');
    expect(answer.status).toBe(204);
    expect(prototypeIsClean()).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const twin = (await rest(hub, "GET", "/twins/pp-attacker", { auth: owner })).json<TwinDocument>();
    expect(twin.properties.reported.constructor).toEqual({ prototype: { polluted: 1 } });
    expect(
      await query(
        "SELECT deviceId FROM devices WHERE properties.reported.constructor.prototype.polluted = 1",
      ),
    ).toEqual(["pp-attacker"]);
    // removing them with null works like any key
    expect((await report('{"constructor":null,"prototype":null}')).status).toBe(204);
    const after = (await rest(hub, "GET", "/twins/pp-attacker", { auth: owner })).json<TwinDocument>();
    expect(Object.hasOwn(after.properties.reported, "constructor")).toBe(false);
  });

  it("REST twin patches with __proto__ keys are refused with 400 naming it, at any depth; other bodies stay safe", async () => {
    for (const body of [
      '{"tags":{"__proto__":{"location":{"plant":{}}}}}',
      '{"properties":{"desired":{"__proto__":{"hasOwnProperty":null}}}}',
      '{"properties":{"desired":{"a":{"b":{"__proto__":{"x":1}}}}}}',
    ]) {
      const answer = await rest(hub, "PATCH", "/twins/pp-bystander", { auth: owner, body });
      expect(answer.status).toBe(400);
      expect(answer.json<{ Message: string }>().Message).toMatch(
        /ArgumentInvalid;Invalid property name "__proto__"/,
      );
    }
    // "constructor" holding "prototype" is data, as over MQTT
    const data = await rest(hub, "PATCH", "/twins/pp-bystander", {
      auth: owner,
      body: '{"properties":{"desired":{"constructor":{"prototype":{"polluted":1}}}}}',
    });
    expect(data.status).toBe(200);
    expect(data.json<TwinDocument>().properties.desired.constructor).toEqual({ prototype: { polluted: 1 } });
    // identity and bulk bodies with such keys cannot reach a prototype either
    const identity = await rest(hub, "PUT", "/devices/pp-proto-id", {
      auth: owner,
      body: '{"deviceId":"pp-proto-id","__proto__":{"status":"disabled"},"capabilities":{"__proto__":{"iotEdge":true}}}',
    });
    expect(identity.status).toBe(200);
    expect(identity.json()).toMatchObject({ status: "enabled", capabilities: { iotEdge: false } });
    const bulk = await rest(hub, "POST", "/devices", {
      auth: owner,
      body: '[{"id":"pp-bulk","__proto__":{"importMode":"delete"},"tags":{"__proto__":{"x":1}}}]',
    });
    expect(bulk.status).toBe(200);
    expect(bulk.json()).toMatchObject({
      isSuccessful: false,
      errors: [{ deviceId: "pp-bulk", errorCode: "ArgumentInvalid" }],
    });
    expect(prototypeIsClean()).toBe(true);
    expect(await query("SELECT deviceId FROM devices WHERE IS_DEFINED(tags.location)")).toEqual([
      "pp-located",
    ]);
  });

  it("the query evaluator reads own properties only, even if Object.prototype were polluted by something else", () => {
    const twins = [
      { deviceId: "a", tags: {} },
      { deviceId: "b", tags: { location: { plant: "P" } } },
    ] as unknown as TwinDocument[];
    const source = { size: twins.length, scan: () => twins };
    const proto = Object.prototype as Record<string, unknown>;
    proto.location = { plant: {} };
    try {
      const q = compileQuery("SELECT deviceId FROM devices WHERE IS_DEFINED(tags.location.plant)");
      expect(runQueryPage(q, source).items).toEqual([{ deviceId: "b" }]);
      const g = compileQuery("SELECT COUNT() AS n FROM devices WHERE IS_DEFINED(tags.location)");
      expect(runQueryPage(g, source).items).toEqual([{ n: 1 }]);
    } finally {
      delete proto.location;
    }
    // and once clean again, plain reads are back
    const q = compileQuery("SELECT deviceId FROM devices WHERE IS_DEFINED(tags.location)");
    expect(runQueryPage(q, source).items).toEqual([{ deviceId: "b" }]);
  });
});
