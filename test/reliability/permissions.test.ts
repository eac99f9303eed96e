import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub } from "../hub/support.js";
import { deviceToken, type RestResult, rest, serviceToken, Tally } from "./support.js";

/**
 * Permissions matrix: every REST operation of the hub against every shared access policy and a device token.
 *
 * IoT Hub's rules ("Control access to IoT Hub"): RegistryRead reads the identity registry (and its
 * statistics), RegistryWrite changes it, ServiceConnect is what back-end services need for twins and
 * queries, DeviceConnect is for device-facing endpoints only and grants nothing on these service APIs.
 * The default policies: iothubowner has all four, service has ServiceConnect, device has DeviceConnect,
 * registryRead has RegistryRead, registryReadWrite has RegistryRead and RegistryWrite.
 *
 * The table below is written out by hand (Y = allowed) rather than computed from the hub's own policy list,
 * so a change in the hub's permission checks cannot silently change what is expected.
 */

type Hub = Awaited<ReturnType<typeof startTestHub>>;
const PRINCIPALS = [
  "iothubowner",
  "service",
  "device",
  "registryRead",
  "registryReadWrite",
  "deviceToken",
] as const;
type Principal = (typeof PRINCIPALS)[number];

// biome-ignore format: the matrix is easier to check as a table
const MATRIX: Record<string, string> = {
  //                                  owner service device regRead regRW devToken
  "GET /devices/{id}":               "Y     -       -      Y       Y     -",
  "PUT /devices/{id} (create)":      "Y     -       -      -       Y     -",
  "PUT /devices/{id} (update)":      "Y     -       -      -       Y     -",
  "DELETE /devices/{id}":            "Y     -       -      -       Y     -",
  "GET /devices":                    "Y     -       -      Y       Y     -",
  "POST /devices (bulk create)":     "Y     -       -      -       Y     -",
  "GET /statistics/devices":         "Y     -       -      Y       Y     -",
  "GET /twins/{id}":                 "Y     Y       -      -       -     -",
  "PATCH /twins/{id}":               "Y     Y       -      -       -     -",
  "PUT /twins/{id}":                 "Y     Y       -      -       -     -",
  "POST /devices/query":             "Y     Y       -      -       -     -",
};

function allowed(operation: string, who: Principal): boolean {
  const cells = MATRIX[operation].split(/\s+/);
  return cells[PRINCIPALS.indexOf(who)] === "Y";
}

/** Safe id fragment for a case. */
const slug = (operation: string, who: Principal) =>
  `${operation.replace(/[^A-Za-z]+/g, "-")}-${who}`.replace(/-+/g, "-").toLowerCase();

interface Operation {
  /** Runs the operation as `auth`; `target` is a device created for this case beforehand. */
  call(hub: Hub, auth: string, target: string, id: string): Promise<RestResult>;
  /** After a refusal: throws if anything was written. After success: throws if the effect is missing. */
  effect(hub: Hub, owner: string, target: string, id: string, done: boolean): Promise<void>;
}

const json = (value: unknown) => JSON.stringify(value);

async function exists(hub: Hub, owner: string, id: string): Promise<boolean> {
  const res = await rest(hub, "GET", `/devices/${encodeURIComponent(id)}`, { auth: owner });
  if (res.status !== 200 && res.status !== 404) throw new Error(`GET device answered ${res.status}`);
  return res.status === 200;
}

async function twin(hub: Hub, owner: string, id: string) {
  const res = await rest(hub, "GET", `/twins/${encodeURIComponent(id)}`, { auth: owner });
  expect(res.status).toBe(200);
  return res.json<{
    version: number;
    tags: Record<string, unknown>;
    properties: { desired: Record<string, unknown> };
  }>();
}

const OPERATIONS: Record<string, Operation> = {
  "GET /devices/{id}": {
    call: (hub, auth, target) => rest(hub, "GET", `/devices/${target}`, { auth }),
    effect: async () => {},
  },
  "PUT /devices/{id} (create)": {
    call: (hub, auth, _t, id) => rest(hub, "PUT", `/devices/${id}`, { auth, body: json({ deviceId: id }) }),
    effect: async (hub, owner, _t, id, done) => expect(await exists(hub, owner, id)).toBe(done),
  },
  "PUT /devices/{id} (update)": {
    call: (hub, auth, target) =>
      rest(hub, "PUT", `/devices/${target}`, {
        auth,
        body: json({ deviceId: target, status: "disabled" }),
        headers: { "if-match": "*" },
      }),
    effect: async (hub, owner, target, _id, done) => {
      const res = await rest(hub, "GET", `/devices/${target}`, { auth: owner });
      expect(res.json().status).toBe(done ? "disabled" : "enabled");
    },
  },
  "DELETE /devices/{id}": {
    call: (hub, auth, target) =>
      rest(hub, "DELETE", `/devices/${target}`, { auth, headers: { "if-match": "*" } }),
    effect: async (hub, owner, target, _id, done) => expect(await exists(hub, owner, target)).toBe(!done),
  },
  "GET /devices": {
    call: (hub, auth) => rest(hub, "GET", "/devices", { auth, query: "&top=5" }),
    effect: async () => {},
  },
  "POST /devices (bulk create)": {
    call: (hub, auth, _t, id) =>
      rest(hub, "POST", "/devices", {
        auth,
        body: json([
          { id: `${id}-a`, importMode: "create" },
          { id: `${id}-b`, importMode: "create" },
        ]),
      }),
    effect: async (hub, owner, _t, id, done) => {
      expect(await exists(hub, owner, `${id}-a`)).toBe(done);
      expect(await exists(hub, owner, `${id}-b`)).toBe(done);
    },
  },
  "GET /statistics/devices": {
    call: (hub, auth) => rest(hub, "GET", "/statistics/devices", { auth }),
    effect: async () => {},
  },
  "GET /twins/{id}": {
    call: (hub, auth, target) => rest(hub, "GET", `/twins/${target}`, { auth }),
    effect: async () => {},
  },
  "PATCH /twins/{id}": {
    call: (hub, auth, target) =>
      rest(hub, "PATCH", `/twins/${target}`, {
        auth,
        body: json({ tags: { patched: true }, properties: { desired: { patched: 1 } } }),
        headers: { "if-match": "*" },
      }),
    effect: async (hub, owner, target, _id, done) => {
      const t = await twin(hub, owner, target);
      expect(t.tags.patched).toBe(done ? true : undefined);
      expect(t.properties.desired.patched).toBe(done ? 1 : undefined);
    },
  },
  "PUT /twins/{id}": {
    call: (hub, auth, target) =>
      rest(hub, "PUT", `/twins/${target}`, {
        auth,
        body: json({ tags: { replaced: true }, properties: { desired: { replaced: 1 } } }),
        headers: { "if-match": "*" },
      }),
    effect: async (hub, owner, target, _id, done) => {
      const t = await twin(hub, owner, target);
      expect(t.tags).toEqual(done ? { replaced: true } : { before: true });
    },
  },
  "POST /devices/query": {
    call: (hub, auth) =>
      rest(hub, "POST", "/devices/query", { auth, body: json({ query: "SELECT * FROM devices" }) }),
    effect: async () => {},
  },
};

describe("permissions matrix: every REST operation x every policy and a device token", () => {
  let hub: Hub;
  let owner: string;
  let devToken: string;
  const tally = new Tally("permissions matrix");
  const cases = Object.keys(MATRIX).flatMap((operation) =>
    PRINCIPALS.map((who) => ({ operation, who, allowed: allowed(operation, who) })),
  );

  beforeAll(async () => {
    hub = await startTestHub();
    owner = serviceToken(hub, "iothubowner");
    // Device identities the cases act on: one per case, created (and tagged) as the owner.
    const targets = cases.map((c) => ({ id: `t-${slug(c.operation, c.who)}`, importMode: "create" }));
    for (let i = 0; i < targets.length; i += 100) {
      const res = await rest(hub, "POST", "/devices", { auth: owner, body: json(targets.slice(i, i + 100)) });
      expect(res.status).toBe(200);
    }
    for (const t of targets) {
      const res = await rest(hub, "PATCH", `/twins/${t.id}`, {
        auth: owner,
        body: json({ tags: { before: true } }),
        headers: { "if-match": "*" },
      });
      expect(res.status).toBe(200);
    }
    const key = /SharedAccessKey=([^;]+)/.exec(hub.deviceConnectionString())![1];
    devToken = deviceToken(hub, "myDeviceId", key);
  });
  afterAll(async () => {
    console.log(tally.line());
    await hub?.cleanup();
  });

  const tokenFor = (who: Principal) => (who === "deviceToken" ? devToken : serviceToken(hub, who));

  it.each(cases)("$operation as $who: allowed=$allowed", async ({ operation, who, allowed }) => {
    await tally.run(`${operation} as ${who}`, async () => {
      const op = OPERATIONS[operation];
      const target = `t-${slug(operation, who)}`;
      const id = `n-${slug(operation, who)}`;
      const res = await op.call(hub, tokenFor(who), target, id);
      if (allowed) {
        expect(res.status, res.body).toBeGreaterThanOrEqual(200);
        expect(res.status, res.body).toBeLessThan(300);
      } else {
        expect(res.status, res.body).toBe(401);
        expect(res.json<{ Message: string }>().Message).toMatch(/^ErrorCode:IotHubUnauthorizedAccess;/);
      }
      await op.effect(hub, owner, target, id, allowed);
    });
  });

  it("tried every cell of the matrix and handled each as expected", () => {
    expect(tally.tried).toBe(Object.keys(MATRIX).length * PRINCIPALS.length);
    expect(tally.handled).toBe(tally.tried);
  });
});
