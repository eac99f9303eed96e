import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDeviceConnectionString } from "../../src/config/index.js";
import {
  type DesiredUpdate,
  reportConnectivity,
  retryPolicy,
  withoutMetadata,
} from "../../src/device/report-connectivity.js";
import { createDeviceClient } from "../../src/sdk/index.js";
import { registerDevice, startTestHub, type TestHub } from "../cli/support.js";

describe("withoutMetadata", () => {
  it("drops $-keys at every level and functions, and copies", () => {
    const source = {
      location: "Redmond43",
      nested: { a: 1, $metadata: { x: 1 } },
      $version: 4,
      $metadata: {},
      update: () => {},
    };
    const copy = withoutMetadata(source);
    expect(copy).toEqual({ location: "Redmond43", nested: { a: 1 } });
    (copy.nested as Record<string, unknown>).a = 2;
    expect(source.nested.a).toBe(1);
  });

  it("returns an empty object for non-objects", () => {
    expect(withoutMetadata(undefined)).toEqual({});
    expect(withoutMetadata("x")).toEqual({});
  });
});

describe("retryPolicy", () => {
  const named = (name: string, message = "x") => Object.assign(new Error(message), { name });

  it("retries transient errors and reports each retry", () => {
    const seen: string[] = [];
    const policy = retryPolicy((e) => seen.push(e.name));
    expect(policy.shouldRetry(named("NotConnectedError", "Connection to the server has been closed"))).toBe(
      true,
    );
    expect(policy.shouldRetry(named("ThrottlingError"))).toBe(true);
    expect(seen).toEqual(["NotConnectedError", "ThrottlingError"]);
  });

  it("gives up on refused logins, even when the transport calls them NotConnectedError", () => {
    const policy = retryPolicy();
    expect(policy.shouldRetry(named("NotConnectedError", "Connection refused: Not authorized"))).toBe(false);
    expect(policy.shouldRetry(named("UnauthorizedError"))).toBe(false);
    expect(policy.shouldRetry(named("DeviceNotFoundError"))).toBe(false);
  });

  it("backs off exponentially, with jitter, within bounds", () => {
    const policy = retryPolicy();
    expect(policy.nextRetryTimeout(0, false)).toBe(0);
    for (let n = 1; n < 12; n++) {
      const delay = policy.nextRetryTimeout(n, false);
      expect(delay).toBeGreaterThanOrEqual(Math.min(10_000, 100 * 2 ** n) * 0.75);
      expect(delay).toBeLessThanOrEqual(Math.min(10_000, 100 * 2 ** n) * 1.25);
    }
    expect(policy.nextRetryTimeout(20, true)).toBeLessThanOrEqual(75_000);
  });
});

describe("the device logic against a local hub", () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub();
  });
  afterAll(async () => {
    await t.close();
  });

  async function clientFor(deviceId: string) {
    await registerDevice(t.registry, deviceId);
    const cs = parseDeviceConnectionString(t.hub.deviceConnectionString(deviceId), { name: "test" });
    return createDeviceClient(cs, t.hub.caPem);
  }

  it("reports connectivity and returns the reported $version the hub assigned", async () => {
    await registerDevice(t.registry, "d-once");
    await t.registry.updateTwin("d-once", { properties: { desired: { location: "Here" } } }, "*");
    const cs = parseDeviceConnectionString(t.hub.deviceConnectionString("d-once"), { name: "test" });
    const session = await reportConnectivity(await createDeviceClient(cs, t.hub.caPem), {
      deviceId: "d-once",
      type: "lte",
      once: true,
      timeoutSeconds: 10,
    });
    try {
      expect(session.desired).toEqual({ location: "Here" });
      expect(session.reported).toEqual({ connectivity: { type: "lte" } });
      const { responseBody: twin } = await t.registry.getTwin("d-once");
      expect(session.reportedVersion).toBe(twin.properties.reported.$version);
      expect(session.desiredVersion).toBe(twin.properties.desired.$version);
    } finally {
      await session.close();
      await session.close(); // closing twice is fine
    }
  });

  it("passes on each desired update once, and not the state it already had", async () => {
    const client = await clientFor("d-listen");
    await t.registry.updateTwin("d-listen", { properties: { desired: { before: 1 } } }, "*");
    const updates: DesiredUpdate[] = [];
    const session = await reportConnectivity(client, {
      deviceId: "d-listen",
      type: "cellular",
      once: false,
      timeoutSeconds: 10,
      onDesiredUpdate: (u) => updates.push(u),
    });
    try {
      expect(session.desired).toEqual({ before: 1 });
      expect(updates).toEqual([]);
      await t.registry.updateTwin("d-listen", { properties: { desired: { after: 2 } } }, "*");
      const deadline = Date.now() + 5000;
      while (updates.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(updates).toEqual([{ version: (session.desiredVersion ?? 0) + 1, patch: { after: 2 } }]);
    } finally {
      await session.close();
    }
  });

  it("rejects with a timeout when the hub does not answer in time, and closes the client", async () => {
    const client = await clientFor("d-timeout");
    await expect(
      reportConnectivity(client, { deviceId: "d-timeout", type: "x", once: true, timeoutSeconds: 0.001 }),
    ).rejects.toMatchObject({ name: "TimeoutError" });
  });
});
