import { request } from "node:https";
import type { Registry } from "azure-iothub";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeToken } from "../../../src/hub/auth/sas.js";
import { deviceToken, inAnHour, rest, serviceToken } from "../../reliability/support.js";
import { registryFor, startTestHub } from "../support.js";

type Hub = Awaited<ReturnType<typeof startTestHub>>;

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("REST wire details: x-ms-item-type, api-version, x-ms-request-id, device tokens", () => {
  let hub: Hub;
  let registry: Registry;

  beforeAll(async () => {
    hub = await startTestHub({ inMemory: true });
    registry = registryFor(hub.serviceConnectionString, hub.caPem);
    await registry.create({ deviceId: "wire-1" });
  });
  afterAll(() => hub.cleanup());

  const query = (text: string) =>
    rest(hub, "POST", "/devices/query", { auth: serviceToken(hub), body: JSON.stringify({ query: text }) });

  it("x-ms-item-type is 'twin' for SELECT * and 'raw' for projections and aggregates (C# QueryResultType, Java QueryType)", async () => {
    const star = await query("SELECT * FROM devices");
    expect(star.status).toBe(200);
    expect(star.headers["x-ms-item-type"]).toBe("twin");
    const projection = await query("SELECT deviceId FROM devices");
    expect(projection.headers["x-ms-item-type"]).toBe("raw");
    const aggregate = await query("SELECT COUNT() AS n FROM devices");
    expect(aggregate.headers["x-ms-item-type"]).toBe("raw");
    // the SDK still pages through both kinds
    const twins = await registry.createQuery("SELECT * FROM devices").nextAsTwin();
    expect(twins.result.map((t) => t.deviceId)).toContain("wire-1");
  });

  /** A GET with exactly this path and query (the rest() helper always adds api-version=2021-04-12). */
  const rawGet = (path: string, auth: string) =>
    new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      request(
        {
          host: "localhost",
          port: hub.port,
          path,
          ca: hub.caPem,
          agent: false,
          headers: { authorization: auth },
        },
        (res) => {
          let body = "";
          res.on("data", (d) => (body += d));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      )
        .on("error", reject)
        .end();
    });

  it("a missing api-version is refused with 400 InvalidProtocolVersion, as IoT Hub refuses it", async () => {
    const answer = await rawGet("/statistics/devices", serviceToken(hub));
    expect(answer.status).toBe(400);
    expect(answer.headers["iothub-errorcode"]).toBe("InvalidProtocolVersion");
    expect(JSON.parse(answer.body).Message).toMatch(/^ErrorCode:InvalidProtocolVersion;.*api-version/);
    expect(answer.headers["x-ms-request-id"]).toMatch(GUID);
  });

  it("an unsupported api-version is refused the same way; supported older ones are served", async () => {
    const auth = serviceToken(hub);
    for (const version of ["1999-01-01", "2021-04-12-preview", "latest"]) {
      const answer = await rawGet(`/statistics/devices?api-version=${version}`, auth);
      expect(answer.status).toBe(400);
      expect(answer.headers["iothub-errorcode"]).toBe("InvalidProtocolVersion");
    }
    expect((await rawGet("/statistics/devices?api-version=2020-09-30", auth)).status).toBe(200);
    expect((await rawGet("/statistics/devices?api-version=2021-04-12", auth)).status).toBe(200);
  });

  it("every answer carries a fresh x-ms-request-id GUID, errors included", async () => {
    const auth = serviceToken(hub);
    const ok1 = await rest(hub, "GET", "/devices/wire-1", { auth });
    const ok2 = await rest(hub, "GET", "/devices/wire-1", { auth });
    const missing = await rest(hub, "GET", "/devices/nope", { auth });
    const unauth = await rest(hub, "GET", "/devices/wire-1");
    for (const r of [ok1, ok2, missing, unauth]) expect(r.headers["x-ms-request-id"]).toMatch(GUID);
    expect(ok1.headers["x-ms-request-id"]).not.toBe(ok2.headers["x-ms-request-id"]);
    expect(missing.headers["iothub-errorcode"]).toBe("DeviceNotFound");
  });

  it("a device token sent to a service API is refused with a message that says it is a device token", async () => {
    const key = (await registry.get("wire-1")).responseBody.authentication?.symmetricKey?.primaryKey ?? "";
    const token = deviceToken(hub, "wire-1", key);
    const answer = await rest(hub, "GET", "/twins/wire-1", { auth: token });
    expect(answer.status).toBe(401);
    expect(answer.json<{ Message: string }>().Message).toMatch(
      /IotHubUnauthorizedAccess;This is a device token/,
    );
    // the SDK's own device tokens (sr URL-encoded) are named the same way
    const encoded = makeToken(key, encodeURIComponent(`${hub.hostName}/devices/wire-1`), inAnHour());
    const second = await rest(hub, "GET", "/statistics/devices", { auth: encoded });
    expect(second.json<{ Message: string }>().Message).toMatch(/device token/);
  });
});
