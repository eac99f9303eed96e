import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeToken } from "../../src/hub/auth/sas.js";
import { inAnHour, policy, type RestCall, rest } from "../reliability/support.js";
import { registryFor, sdkErrorOf, startTestHub, twinOf } from "./support.js";

type Hub = Awaited<ReturnType<typeof startTestHub>>;

describe("local hub REST authentication and error shapes", () => {
  let hub: Hub;

  /** A raw HTTPS call, to send what the SDK never would. */
  const call = (method: string, path: string, opts: RestCall = {}) => rest(hub, method, path, opts);
  const ownerToken = (expiry = inAnHour(), resource = hub.hostName) =>
    makeToken(policy("iothubowner").primaryKey, resource, expiry, "iothubowner");

  beforeAll(async () => {
    hub = await startTestHub();
  });
  afterAll(() => hub.cleanup());

  it("answers with IoT Hub's error body: Message = ErrorCode:<code>;<text>", async () => {
    const res = await call("GET", "/twins/nobody-here", { auth: ownerToken() });
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body).Message).toMatch(/^ErrorCode:DeviceNotFound;/);
  });

  it("refuses a missing, expired, wrongly signed or wrong-audience token with 401", async () => {
    expect((await call("GET", "/statistics/devices")).status).toBe(401);
    expect(
      (await call("GET", "/statistics/devices", { auth: ownerToken(Math.floor(Date.now() / 1000) - 1) }))
        .status,
    ).toBe(401);
    const forged = makeToken(
      Buffer.from("not-the-iothubowner-key-at-all!!").toString("base64"),
      hub.hostName,
      inAnHour(),
      "iothubowner",
    );
    expect((await call("GET", "/statistics/devices", { auth: forged })).status).toBe(401);
    expect(
      (
        await call("GET", "/statistics/devices", {
          auth: ownerToken(inAnHour(), "otherhub.azure-devices.net"),
        })
      ).status,
    ).toBe(401);
    const unknownPolicy = makeToken(
      policy("iothubowner").primaryKey,
      hub.hostName,
      inAnHour(),
      "nosuchpolicy",
    );
    expect((await call("GET", "/statistics/devices", { auth: unknownPolicy })).status).toBe(401);
    const tampered = ownerToken().replace(/se=\d+/, `se=${inAnHour() + 100}`);
    expect((await call("GET", "/statistics/devices", { auth: tampered })).status).toBe(401);
  });

  it("refuses a device token on service APIs", async () => {
    const device = makeToken(
      hub.deviceConnectionString().split("SharedAccessKey=")[1],
      `${hub.hostName}/devices/myDeviceId`,
      inAnHour(),
    );
    const res = await call("GET", "/twins/myDeviceId", { auth: device });
    expect(res.status).toBe(401);
  });

  it("wrong key through the SDK raises UnauthorizedError", async () => {
    const wrong = `HostName=${hub.hostName};SharedAccessKeyName=iothubowner;SharedAccessKey=${Buffer.from("x".repeat(32)).toString("base64")}`;
    expect(await sdkErrorOf(registryFor(wrong, hub.caPem).getTwin("myDeviceId"))).toBe("UnauthorizedError");
  });

  it("enforces each policy's permissions through the SDK", async () => {
    const as = (name: string) => registryFor(hub.connectionStringFor(name), hub.caPem);
    // registryRead: read the registry, nothing else.
    expect((await as("registryRead").getRegistryStatistics()).responseBody.totalDeviceCount).toBeGreaterThan(
      0,
    );
    expect(await sdkErrorOf(as("registryRead").create({ deviceId: "perm-1" }))).toBe("UnauthorizedError");
    expect(await sdkErrorOf(as("registryRead").getTwin("myDeviceId"))).toBe("UnauthorizedError");
    // service: twins and queries, not the registry.
    expect((await as("service").getTwin("myDeviceId")).responseBody.deviceId).toBe("myDeviceId");
    expect(await sdkErrorOf(as("service").getRegistryStatistics())).toBe("UnauthorizedError");
    expect(await sdkErrorOf(as("service").create({ deviceId: "perm-2" }))).toBe("UnauthorizedError");
    // registryReadWrite: the registry, not twins.
    await as("registryReadWrite").create({ deviceId: "perm-3" });
    expect(await sdkErrorOf(as("registryReadWrite").updateTwin("perm-3", { tags: { a: 1 } }, "*"))).toBe(
      "UnauthorizedError",
    );
    expect(await sdkErrorOf(as("device").get("perm-3"))).toBe("UnauthorizedError");
    // Nothing the refused calls tried was written.
    const owner = as("iothubowner");
    expect(await sdkErrorOf(owner.get("perm-1"))).toBe("DeviceNotFoundError");
    expect(await sdkErrorOf(owner.get("perm-2"))).toBe("DeviceNotFoundError");
    expect((await twinOf(owner, "perm-3")).tags).toEqual({});
  });

  it("answers malformed JSON, wrong content types and huge bodies with 4xx, writing nothing", async () => {
    const auth = ownerToken();
    const before = await call("GET", "/twins/myDeviceId", { auth });
    const bad = await call("PATCH", "/twins/myDeviceId", {
      auth,
      body: '{"tags": {',
      headers: { "if-match": "*" },
    });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).Message).toMatch(/^ErrorCode:/);
    const text = await call("PATCH", "/twins/myDeviceId", {
      auth,
      body: "tags=1",
      contentType: "text/plain",
      headers: { "if-match": "*" },
    });
    expect(text.status).toBe(400);
    const huge = await call("PATCH", "/twins/myDeviceId", {
      auth,
      body: JSON.stringify({ tags: { x: "y".repeat(400_000) } }),
      headers: { "if-match": "*" },
    });
    expect(huge.status).toBe(413);
    const array = await call("PATCH", "/twins/myDeviceId", {
      auth,
      body: "[1,2]",
      headers: { "if-match": "*" },
    });
    expect(array.status).toBe(400);
    const after = await call("GET", "/twins/myDeviceId", { auth });
    expect(JSON.parse(after.body).etag).toBe(JSON.parse(before.body).etag);
  });

  it("answers unknown routes with 404 in IoT Hub's shape", async () => {
    const res = await call("GET", "/nothing/here", { auth: ownerToken() });
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body).Message).toMatch(/^ErrorCode:NotFound;/);
  });
});
