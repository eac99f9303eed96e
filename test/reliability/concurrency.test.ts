import type { Registry } from "azure-iothub";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TwinDocument } from "../../src/hub/twin/types.js";
import { eventually, registryFor, startTestHub, twinOf } from "../hub/support.js";
import { deviceToken, mqttLogin, rest, serviceToken, subscribe } from "./support.js";

type Hub = Awaited<ReturnType<typeof startTestHub>>;

/** Outcome of one conditional PATCH: the twin it produced, or the SDK's error class name. */
type Outcome = { ok: true; twin: TwinDocument } | { ok: false; error: string };

async function patch(
  registry: Registry,
  deviceId: string,
  body: Record<string, unknown>,
  etag: string,
): Promise<Outcome> {
  try {
    const { responseBody } = await registry.updateTwin(deviceId, body, etag);
    return { ok: true, twin: responseBody as unknown as TwinDocument };
  } catch (error) {
    return { ok: false, error: (error as Error).constructor.name };
  }
}

describe("concurrency: conditional twin updates and both sides writing at once", () => {
  let hub: Hub;
  /** Two independent service clients with different policies, as two back ends would be. */
  let clientA: Registry;
  let clientB: Registry;

  beforeAll(async () => {
    hub = await startTestHub();
    clientA = registryFor(hub.connectionStringFor("iothubowner"), hub.caPem);
    clientB = registryFor(hub.connectionStringFor("service"), hub.caPem);
    await clientA.addDevices([{ deviceId: "race-1" }, { deviceId: "race-2" }, { deviceId: "race-3" }]);
  });
  afterAll(() => hub.cleanup());

  it("100 concurrent PATCHes with the same etag: exactly one wins, 99 get 412, only the winner's change remains", async () => {
    const before = await twinOf(clientA, "race-1");
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        patch(
          i % 2 === 0 ? clientA : clientB,
          "race-1",
          { tags: { [`w${i}`]: i }, properties: { desired: { [`w${i}`]: i, last: i } } },
          before.etag,
        ),
      ),
    );
    const winners = results.flatMap((r, i) => (r.ok ? [i] : []));
    const losers = results.filter((r) => !r.ok);
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(99);
    expect(new Set(losers.map((l) => (l.ok ? "" : l.error)))).toEqual(new Set(["InvalidEtagError"]));

    const after = await twinOf(clientA, "race-1");
    const w = winners[0];
    expect(after.tags).toEqual({ [`w${w}`]: w });
    const { $metadata: _m, $version, ...desired } = after.properties.desired;
    expect(desired).toEqual({ [`w${w}`]: w, last: w });
    expect($version).toBe(before.properties.desired.$version + 1);
    expect(after.version).toBe(before.version + 1);
    expect(after.etag).not.toBe(before.etag);
  });

  it("two clients racing with their latest etags: the winners' changes all remain, every loser gets 412", async () => {
    const start = await twinOf(clientA, "race-2");
    const attempts: Array<{ key: string; outcome: Outcome }> = [];
    // Each client makes 50 conditional PATCHes in a row, always with the newest etag it has seen; the two
    // clients interleave freely, so some of each side's attempts lose.
    const run = async (name: string, registry: Registry) => {
      let etag = start.etag;
      for (let i = 0; i < 50; i++) {
        const key = `${name}${i}`;
        const outcome = await patch(registry, "race-2", { properties: { desired: { [key]: i } } }, etag);
        attempts.push({ key, outcome });
        if (outcome.ok) etag = outcome.twin.etag;
        else etag = (await twinOf(registry, "race-2")).etag;
      }
    };
    await Promise.all([run("a", clientA), run("b", clientB)]);

    expect(attempts).toHaveLength(100);
    const won = attempts.filter((a) => a.outcome.ok);
    const lost = attempts.filter((a) => !a.outcome.ok);
    for (const l of lost) expect(l.outcome.ok ? "" : l.outcome.error).toBe("InvalidEtagError");
    // Both clients' first attempts carry the starting etag, so one of them must lose and one must win.
    expect(won.length).toBeGreaterThanOrEqual(1);
    expect(lost.length).toBeGreaterThanOrEqual(1);

    const end = await twinOf(clientA, "race-2");
    const { $metadata: _m, $version, ...desired } = end.properties.desired;
    expect(Object.keys(desired).sort()).toEqual(won.map((w) => w.key).sort());
    expect($version).toBe(start.properties.desired.$version + won.length);
    expect(end.version).toBe(start.version + won.length);
    // Every acknowledged twin had a distinct, increasing version: no two winners saw the same state.
    const versions = won.map((w) => (w.outcome.ok ? w.outcome.twin.version : 0)).sort((x, y) => x - y);
    expect(new Set(versions).size).toBe(won.length);
    expect(versions[versions.length - 1]).toBe(end.version);
  });

  it("no lost update: 100 read-modify-write increments from two clients, retrying on 412, count to 100", async () => {
    const start = await twinOf(clientA, "race-3");
    let conflicts = 0;
    const increment = async (registry: Registry, by: string) => {
      for (;;) {
        const current = await twinOf(registry, "race-3");
        const count = (current.properties.desired.count as number | undefined) ?? 0;
        const outcome = await patch(
          registry,
          "race-3",
          { properties: { desired: { count: count + 1, [by]: true } } },
          current.etag,
        );
        if (outcome.ok) return;
        expect(outcome.error).toBe("InvalidEtagError");
        conflicts++;
      }
    };
    // Each client runs its 50 increments in sequence; the two sequences run at the same time.
    const side = async (registry: Registry, name: string) => {
      for (let i = 0; i < 50; i++) await increment(registry, `${name}${i}`);
    };
    await Promise.all([side(clientA, "a"), side(clientB, "b")]);

    const end = await twinOf(clientA, "race-3");
    expect(end.properties.desired.count).toBe(100);
    for (let i = 0; i < 50; i++) {
      expect(end.properties.desired[`a${i}`]).toBe(true);
      expect(end.properties.desired[`b${i}`]).toBe(true);
    }
    expect(end.properties.desired.$version).toBe(start.properties.desired.$version + 100);
    expect(end.version).toBe(start.version + 100);
    console.log(
      `[reliability] no-lost-update: 100 increments, ${conflicts} conflicts answered 412 and retried`,
    );
  });

  describe("device and service writing the same twin at once", () => {
    let device: MqttClient;
    const acks = new Map<string, { status: number; version: number | undefined }>();
    const pushes: Array<{ version: number; patch: Record<string, unknown> }> = [];

    beforeAll(async () => {
      const res = await rest(hub, "PUT", "/devices/both-sides", {
        auth: serviceToken(hub),
        body: JSON.stringify({ deviceId: "both-sides" }),
      });
      const key = res.json<{ authentication: { symmetricKey: { primaryKey: string } } }>().authentication
        .symmetricKey.primaryKey;
      const login = await mqttLogin(hub, "both-sides", deviceToken(hub, "both-sides", key));
      if (!login.ok) throw new Error(`device could not connect: ${login.reason}`);
      device = login.client;
      device.on("message", (topic, payload) => {
        const res = /^\$iothub\/twin\/res\/(\d+)\/\?\$rid=([^&]+)(?:&\$version=(\d+))?/.exec(topic);
        if (res) {
          acks.set(res[2], { status: Number(res[1]), version: res[3] ? Number(res[3]) : undefined });
          return;
        }
        const push = /^\$iothub\/twin\/PATCH\/properties\/desired\/\?\$version=(\d+)$/.exec(topic);
        if (push) pushes.push({ version: Number(push[1]), patch: JSON.parse(payload.toString()) });
      });
      expect(
        await subscribe(device, ["$iothub/twin/res/#", "$iothub/twin/PATCH/properties/desired/#"]),
      ).toEqual([0, 0]);
    });
    afterAll(() => {
      device?.end(true);
    });

    it("50 reported and 50 desired patches at once: both sections end consistent with their $versions", async () => {
      const start = await twinOf(clientA, "both-sides");
      const r0 = start.properties.reported.$version;
      const d0 = start.properties.desired.$version;

      const reported = Array.from({ length: 50 }, (_, i) => {
        const rid = `r${i}`;
        device.publish(
          `$iothub/twin/PATCH/properties/reported/?$rid=${rid}`,
          JSON.stringify({ [`rep${i}`]: i, lastReported: i }),
        );
        return rid;
      });
      const desired = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          patch(
            i % 2 ? clientA : clientB,
            "both-sides",
            { properties: { desired: { [`des${i}`]: i } } },
            "*",
          ),
        ),
      );
      // Every reported patch is acknowledged with 204 and its own new $version: together exactly r0+1..r0+50.
      await eventually(() => (reported.every((rid) => acks.has(rid)) ? true : undefined), 20_000);
      const reportedVersions = reported.map((rid) => {
        const ack = acks.get(rid);
        expect(ack?.status, `ack of ${rid}`).toBe(204);
        return ack!.version!;
      });
      expect([...reportedVersions].sort((a, b) => a - b)).toEqual(
        Array.from({ length: 50 }, (_, i) => r0 + 1 + i),
      );
      // Every desired patch succeeded with its own new $version: together exactly d0+1..d0+50.
      const desiredVersions = desired.map((o) => {
        if (!o.ok) throw new Error(`desired patch failed: ${o.error}`);
        return o.twin.properties.desired.$version;
      });
      expect([...desiredVersions].sort((a, b) => a - b)).toEqual(
        Array.from({ length: 50 }, (_, i) => d0 + 1 + i),
      );

      const end = await twinOf(clientA, "both-sides");
      expect(end.properties.reported.$version).toBe(r0 + 50);
      expect(end.properties.desired.$version).toBe(d0 + 50);
      expect(end.version).toBe(start.version + 100);
      for (let i = 0; i < 50; i++) {
        expect(end.properties.reported[`rep${i}`]).toBe(i);
        expect(end.properties.desired[`des${i}`]).toBe(i);
        // Each desired property's metadata names the version of the patch that set it.
        const meta = end.properties.desired.$metadata[`des${i}`] as { $lastUpdatedVersion: number };
        expect(meta.$lastUpdatedVersion).toBe(desiredVersions[i]);
      }
      // The last reported patch the hub applied (the highest $version) is the one whose value stuck.
      const lastApplied = reportedVersions.indexOf(r0 + 50);
      expect(end.properties.reported.lastReported).toBe(lastApplied);

      // The device was sent every desired change once, in version order, each with the patch that made it.
      await eventually(() => (pushes.length >= 50 ? true : undefined), 20_000);
      expect(pushes.map((p) => p.version)).toEqual(Array.from({ length: 50 }, (_, i) => d0 + 1 + i));
      for (const p of pushes) {
        const i = desiredVersions.indexOf(p.version);
        expect(p.patch).toEqual({ [`des${i}`]: i, $version: p.version });
      }
    });
  });
});
