import type { Client as DeviceClient } from "azure-iot-device";
import type { DeviceMethodParams, Registry, Client as ServiceClient } from "azure-iothub";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseServiceConnectionString } from "../../../src/config/index.js";
import { createServiceClient } from "../../../src/sdk/index.js";
import { registryFor, serviceClientFor, startTestHub } from "../support.js";
import { type Hub, newDevice, noPendingMethods, rawDevice, receiveMethods, sdkDevice } from "./support.js";

/** The SDK's error for a failed call, with the HTTP status and IoT Hub's error body it was made from. */
async function failure(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (error) {
    const e = error as Error & {
      response?: { statusCode?: number; headers?: Record<string, string> };
      responseBody?: string;
    };
    return {
      type: e.constructor.name,
      status: e.response?.statusCode,
      errorCode: e.response?.headers?.["iothub-errorcode"],
      body: e.responseBody ?? "",
    };
  }
  throw new Error("expected the call to fail");
}

describe("direct methods through the real azure-iothub Client and azure-iot-device", () => {
  let hub: Hub;
  let registry: Registry;
  let service: { client: ServiceClient; close(): void };
  const devices: DeviceClient[] = [];
  const invoke = (deviceId: string, params: DeviceMethodParams) =>
    service.client.invokeDeviceMethod(deviceId, params);

  beforeAll(async () => {
    hub = await startTestHub({ inMemory: true });
    registry = registryFor(hub.serviceConnectionString, hub.caPem);
    service = serviceClientFor(hub.serviceConnectionString, hub.caPem);
  });
  afterAll(async () => {
    await Promise.all(devices.map((d) => d.close().catch(() => {})));
    service?.close();
    await hub?.cleanup();
  });

  it("invokeDeviceMethod reaches onDeviceMethod and returns the device's status and payload", async () => {
    const { connectionString } = await newDevice(hub, registry, "m-echo");
    const seen: unknown[] = [];
    devices.push(
      await sdkDevice(hub, connectionString, {
        echo: (payload) => {
          seen.push(payload);
          return { status: 201, payload: { echoed: payload } };
        },
      }),
    );
    const { result } = await invoke("m-echo", {
      methodName: "echo",
      payload: { light: "on", level: 3 },
      responseTimeoutInSeconds: 30,
    });
    expect(seen).toEqual([{ light: "on", level: 3 }]);
    expect(result).toEqual({ status: 201, payload: { echoed: { light: "on", level: 3 } } });
    // No payload at all: the device gets null, and an answer without a body comes back as null.
    const { result: bare } = await invoke("m-echo", { methodName: "echo" });
    expect(bare).toEqual({ status: 201, payload: { echoed: null } });
    await noPendingMethods(hub);
  });

  it("a device that is not connected: 404 DeviceNotOnline (404103) at once", async () => {
    await newDevice(hub, registry, "m-offline");
    const started = Date.now();
    const f = await failure(invoke("m-offline", { methodName: "reboot", responseTimeoutInSeconds: 5 }));
    expect(Date.now() - started).toBeLessThan(4000);
    // The Node SDK maps a 404 to DeviceNotFoundError only for ErrorCode DeviceNotFound: DeviceNotOnline is a
    // plain Error, exactly as with IoT Hub; the code is in the header and in the body.
    expect(f).toMatchObject({ type: "Error", status: 404, errorCode: "DeviceNotOnline" });
    expect(JSON.parse(JSON.parse(f.body).Message)).toMatchObject({
      errorCode: 404103,
      message: "Timed out waiting for device to connect.",
      info: { timeout: "00:00:00" },
    });
  });

  it("a connected device that has not subscribed to methods: 404 DeviceNotOnline", async () => {
    const { key } = await newDevice(hub, registry, "m-unsubscribed");
    const raw = await rawDevice(hub, "m-unsubscribed", key);
    try {
      const f = await failure(invoke("m-unsubscribed", { methodName: "reboot" }));
      expect(f).toMatchObject({ status: 404, errorCode: "DeviceNotOnline" });
      expect(JSON.parse(JSON.parse(f.body).Message).message).toContain("hasn't registered the direct method");
    } finally {
      raw.end(true);
    }
  });

  it("connectTimeoutInSeconds: 404 after waiting that long; a device that comes online in time answers", async () => {
    const { connectionString } = await newDevice(hub, registry, "m-late");
    const started = Date.now();
    const f = await failure(
      invoke("m-late", { methodName: "ping", responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 1 }),
    );
    expect(f).toMatchObject({ status: 404, errorCode: "DeviceNotOnline" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(JSON.parse(JSON.parse(f.body).Message).info).toEqual({ timeout: "00:00:01" });

    const call = invoke("m-late", {
      methodName: "ping",
      payload: "late",
      responseTimeoutInSeconds: 30,
      connectTimeoutInSeconds: 60,
    });
    await new Promise((r) => setTimeout(r, 500));
    devices.push(
      await sdkDevice(hub, connectionString, { ping: (p) => ({ status: 200, payload: `pong ${p}` }) }),
    );
    expect((await call).result).toEqual({ status: 200, payload: "pong late" });
    await noPendingMethods(hub);
  });

  it("no answer within responseTimeoutInSeconds: 504 GatewayTimeoutError (504101)", async () => {
    const { key } = await newDevice(hub, registry, "m-silent");
    const raw = await rawDevice(hub, "m-silent", key);
    try {
      const received = await receiveMethods(raw);
      const started = Date.now();
      const f = await failure(invoke("m-silent", { methodName: "slow", responseTimeoutInSeconds: 5 }));
      expect(Date.now() - started).toBeGreaterThanOrEqual(4900);
      expect(f).toMatchObject({ type: "GatewayTimeoutError", status: 504, errorCode: "GatewayTimeout" });
      expect(JSON.parse(JSON.parse(f.body).Message)).toMatchObject({
        errorCode: 504101,
        info: { timeout: "00:00:05" },
      });
      expect(received.map((r) => r.name)).toEqual(["slow"]);
      // The request ID is hexadecimal, as IoT Hub's.
      expect(received[0].rid).toMatch(/^[0-9a-f]{17,32}$/);
      await noPendingMethods(hub);
    } finally {
      raw.end(true);
    }
  });

  it("payloads over 128 KB: the request is refused (ArgumentError), an oversized answer fails the call (502)", async () => {
    const { connectionString } = await newDevice(hub, registry, "m-big");
    const big = "x".repeat(128 * 1024 + 1);
    devices.push(
      await sdkDevice(hub, connectionString, {
        bigAnswer: () => ({ status: 200, payload: big }),
        fits: (p) => ({ status: 200, payload: (p as string).length }),
      }),
    );
    const tooBig = await failure(invoke("m-big", { methodName: "fits", payload: big }));
    expect(tooBig).toMatchObject({ type: "ArgumentError", status: 400, errorCode: "ArgumentInvalid" });
    // Exactly 128 KB of JSON passes: a string of 131070 characters is 131072 bytes with its quotes.
    const atLimit = "y".repeat(128 * 1024 - 2);
    expect((await invoke("m-big", { methodName: "fits", payload: atLimit })).result).toEqual({
      status: 200,
      payload: atLimit.length,
    });
    const badAnswer = await failure(invoke("m-big", { methodName: "bigAnswer" }));
    expect(badAnswer).toMatchObject({
      type: "BadDeviceResponseError",
      status: 502,
      errorCode: "GenericBadGateway",
    });
    await noPendingMethods(hub);
  });

  it("the device disconnects during the call: 503 DeviceUnavailable, which the SDK retries; then 404 DeviceNotOnline", async () => {
    const { connectionString } = await newDevice(hub, registry, "m-leaves");
    let device: DeviceClient | undefined;
    device = await sdkDevice(hub, connectionString, {
      leave: () => {
        // Closes its connection instead of answering.
        void device?.close();
        return undefined;
      },
    });
    devices.push(device);
    const started = Date.now();
    const f = await failure(invoke("m-leaves", { methodName: "leave", responseTimeoutInSeconds: 60 }));
    // Well before the 60 s response timeout: the 503 comes at once, the SDK's retry finds the device offline.
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(f).toMatchObject({ status: 404, errorCode: "DeviceNotOnline" });
    await noPendingMethods(hub);
  });

  it("the product's adapter (src/sdk createServiceClient) reaches host:port; a plain Azure string is left alone", async () => {
    const { connectionString } = await newDevice(hub, registry, "m-adapter");
    devices.push(await sdkDevice(hub, connectionString, { hi: () => ({ status: 200, payload: "hello" }) }));
    const adapted = await createServiceClient(
      parseServiceConnectionString(hub.serviceConnectionString, { name: "test" }),
      hub.caPem,
    );
    try {
      expect(adapted.adapted).toBe(true);
      const { result } = await adapted.client.invokeDeviceMethod("m-adapter", { methodName: "hi" });
      expect(result).toEqual({ status: 200, payload: "hello" });
    } finally {
      adapted.close();
    }
    const azure = await createServiceClient(
      parseServiceConnectionString(
        "HostName=myhub.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=c2VjcmV0LWtleQ==",
        { name: "test" },
      ),
    );
    expect(azure.adapted).toBe(false);
    azure.close();
  });

  it("an unregistered device: DeviceNotFoundError", async () => {
    const f = await failure(invoke("m-nobody", { methodName: "reboot" }));
    expect(f).toMatchObject({ type: "DeviceNotFoundError", status: 404, errorCode: "DeviceNotFound" });
  });
});
