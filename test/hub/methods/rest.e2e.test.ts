import type { Registry } from "azure-iothub";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceToken, serviceToken } from "../../reliability/support.js";
import { registryFor, startTestHub } from "../support.js";
import {
  answer,
  type Hub,
  invokeRaw,
  newDevice,
  noPendingMethods,
  rawDevice,
  receiveMethods,
} from "./support.js";

describe("POST /twins/{id}/methods as raw HTTPS (what curl sends)", () => {
  let hub: Hub;
  let registry: Registry;
  let key: string;
  let device: MqttClient;

  beforeAll(async () => {
    hub = await startTestHub({ inMemory: true });
    registry = registryFor(hub.serviceConnectionString, hub.caPem);
    ({ key } = await newDevice(hub, registry, "rest-dev"));
    device = await rawDevice(hub, "rest-dev", key);
    const requests = await receiveMethods(device);
    // Echoes every request: `{name, payload}` with status 200.
    device.on("message", () => {
      for (const r of requests.splice(0))
        void answer(device, 200, r.rid, JSON.stringify({ name: r.name, payload: JSON.parse(r.payload) }));
    });
  });
  afterAll(async () => {
    device?.end(true);
    await hub?.cleanup();
  });

  it("the doc's curl example: 200 with the device's status and payload", async () => {
    const res = await invokeRaw(hub, "rest-dev", {
      methodName: "reboot",
      responseTimeoutInSeconds: 200,
      payload: { input1: "someInput", input2: "anotherInput" },
    });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^application\/json/);
    expect(res.headers["x-ms-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.json()).toEqual({
      status: 200,
      payload: { name: "reboot", payload: { input1: "someInput", input2: "anotherInput" } },
    });
    // Method names with the characters the doc allows pass through unchanged.
    const odd = await invokeRaw(hub, "rest-dev", {
      methodName: "set.level_2-a!*'~",
      payload: [1, "two", null],
    });
    expect(odd.json()).toEqual({
      status: 200,
      payload: { name: "set.level_2-a!*'~", payload: [1, "two", null] },
    });
    // Fields the hub does not know (the SDK sends its whole params object) are ignored.
    const extra = await invokeRaw(hub, "rest-dev", { methodName: "x", timeoutInSeconds: 9, other: true });
    expect(extra.status).toBe(200);
  });

  it("invalid bodies: 400 ArgumentInvalid in IoT Hub's error shape, nothing sent to the device", async () => {
    const cases: Array<[string, unknown]> = [
      ["no methodName", { payload: 1 }],
      ["empty methodName", { methodName: "" }],
      ["methodName not a string", { methodName: 42 }],
      ["methodName with a slash", { methodName: "a/b" }],
      ["methodName with a space", { methodName: "a b" }],
      ["methodName with a wildcard", { methodName: "a#" }],
      ["methodName with a plus", { methodName: "a+b" }],
      ["methodName with a dollar", { methodName: "$a" }],
      ["methodName not ASCII", { methodName: "réboot" }],
      ["responseTimeoutInSeconds below 5", { methodName: "m", responseTimeoutInSeconds: 4 }],
      ["responseTimeoutInSeconds 0", { methodName: "m", responseTimeoutInSeconds: 0 }],
      ["responseTimeoutInSeconds above 300", { methodName: "m", responseTimeoutInSeconds: 301 }],
      ["responseTimeoutInSeconds as text", { methodName: "m", responseTimeoutInSeconds: "30" }],
      ["responseTimeoutInSeconds fractional", { methodName: "m", responseTimeoutInSeconds: 5.5 }],
      ["connectTimeoutInSeconds negative", { methodName: "m", connectTimeoutInSeconds: -1 }],
      ["connectTimeoutInSeconds above 300", { methodName: "m", connectTimeoutInSeconds: 301 }],
      ["payload over 128 KB", { methodName: "m", payload: "z".repeat(131_071) }],
      ["an array", [{ methodName: "m" }]],
      ["a string", "m"],
      ["null", null],
    ];
    for (const [name, body] of cases) {
      const res = await invokeRaw(hub, "rest-dev", body);
      expect([name, res.status, res.headers["iothub-errorcode"]]).toEqual([name, 400, "ArgumentInvalid"]);
      expect(res.json().Message).toMatch(/^ErrorCode:ArgumentInvalid;/);
    }
    const broken = await invokeRaw(hub, "rest-dev", undefined, { raw: '{"methodName": "m",' });
    expect(broken.status).toBe(400);
    // Limits are inclusive: 5 and 300 seconds, 300 seconds of connect timeout.
    for (const ok of [
      { methodName: "m", responseTimeoutInSeconds: 5 },
      { methodName: "m", responseTimeoutInSeconds: 300, connectTimeoutInSeconds: 300 },
      { methodName: "m", responseTimeoutInSeconds: null, connectTimeoutInSeconds: 0 },
    ])
      expect((await invokeRaw(hub, "rest-dev", ok)).status).toBe(200);
    await noPendingMethods(hub);
  });

  it("the permission IoT Hub asks: ServiceConnect (service, iothubowner); 401 otherwise", async () => {
    expect((await invokeRaw(hub, "rest-dev", { methodName: "m" }, { policy: "service" })).status).toBe(200);
    for (const policy of ["registryRead", "registryReadWrite", "device"]) {
      const res = await invokeRaw(hub, "rest-dev", { methodName: "m" }, { policy });
      expect([policy, res.status, res.headers["iothub-errorcode"]]).toEqual([
        policy,
        401,
        "IotHubUnauthorizedAccess",
      ]);
    }
    const asDevice = await invokeRaw(
      hub,
      "rest-dev",
      { methodName: "m" },
      { auth: deviceToken(hub, "rest-dev", key) },
    );
    expect(asDevice.status).toBe(401);
    const none = await invokeRaw(hub, "rest-dev", { methodName: "m" }, { auth: "" });
    expect(none.status).toBe(401);
    const expired = await invokeRaw(
      hub,
      "rest-dev",
      { methodName: "m" },
      { auth: serviceToken(hub, "iothubowner", { expiry: Math.floor(Date.now() / 1000) - 10 }) },
    );
    expect(expired.status).toBe(401);
  });

  it("an unregistered device: 404 DeviceNotFound; an unknown route under /twins: 404", async () => {
    const res = await invokeRaw(hub, "nobody-here", { methodName: "m" });
    expect([res.status, res.headers["iothub-errorcode"]]).toEqual([404, "DeviceNotFound"]);
    expect(res.json().Message).toMatch(/^ErrorCode:DeviceNotFound;/);
    // Validation comes first, as the body is read before the device is looked up.
    expect((await invokeRaw(hub, "nobody-here", { methodName: "" })).status).toBe(400);
    // A disabled device counts as not found ("The device either isn't registered or is disabled").
    await newDevice(hub, registry, "rest-disabled");
    await registry.update({ deviceId: "rest-disabled", status: "disabled" });
    const disabled = await invokeRaw(hub, "rest-disabled", { methodName: "m" });
    expect([disabled.status, disabled.headers["iothub-errorcode"]]).toEqual([404, "DeviceNotFound"]);
  });

  it("a device answering with something that is not JSON: 502 GenericBadGateway", async () => {
    const { key: k } = await newDevice(hub, registry, "rest-garbage");
    const d = await rawDevice(hub, "rest-garbage", k);
    try {
      const requests = await receiveMethods(d);
      d.on("message", () => {
        for (const r of requests.splice(0)) void answer(d, 200, r.rid, "not json {");
      });
      const res = await invokeRaw(hub, "rest-garbage", { methodName: "m" });
      expect([res.status, res.headers["iothub-errorcode"]]).toEqual([502, "GenericBadGateway"]);
      expect(JSON.parse(res.json<{ Message: string }>().Message).errorCode).toBe(502000);
    } finally {
      d.end(true);
    }
  });
});
