import { afterEach, describe, expect, it } from "vitest";
import { TUTORIAL_DEVICE } from "../../../src/hub/auth/credentials.js";
import { DelayedTwinSource } from "../../../src/hub/consistency/delayed-source.js";
import { DeviceRegistry } from "../../../src/hub/registry/registry.js";
import { SqliteStore } from "../../../src/hub/store/sqlite.js";
import type { TwinDocument } from "../../../src/hub/twin/types.js";
import { registryFor, startTestHub, twinOf } from "../support.js";

/** A registry over an in-memory store whose changes feed a delayed view driven by a fake clock. */
function setup(delayMs: number, maxEntries?: number) {
  let now = 1_000_000;
  const store = new SqliteStore(undefined);
  const registry = new DeviceRegistry(store);
  const view = new DelayedTwinSource(registry, delayMs, maxEntries, () => now);
  registry.on("recordChanged", (id, before) => view.recordChanged(id, before));
  const tags = (id: string) => (registry.twins.twin(id).tags as { v?: number }).v;
  const seen = () =>
    [...view.scan()].map((t: TwinDocument) => `${t.deviceId}:${(t.tags as { v?: number }).v ?? "-"}`);
  return {
    registry,
    view,
    store,
    tags,
    seen,
    advance: (ms: number) => {
      now += ms;
    },
    patch: (id: string, v: number) => registry.twins.updateTwin(id, { tags: { v } }, "*", false),
  };
}

describe("DelayedTwinSource", () => {
  it("shows each twin as it was delayMs ago; the registry itself stays current", () => {
    const s = setup(1000);
    s.registry.identities.create("a", {});
    s.registry.identities.create("b", {});
    // both were created just now: 1 s ago neither existed
    expect(s.seen()).toEqual([]);
    expect(s.view.size).toBe(0);
    s.advance(1001);
    expect(s.seen()).toEqual(["a:-", "b:-"]);
    s.patch("a", 1);
    expect(s.tags("a")).toBe(1); // GET is current
    expect(s.seen()).toEqual(["a:-", "b:-"]);
    s.advance(500);
    s.patch("a", 2);
    expect(s.seen()).toEqual(["a:-", "b:-"]);
    s.advance(501); // the first patch is now more than 1 s old, the second is not
    expect(s.seen()).toEqual(["a:1", "b:-"]);
    s.advance(500);
    expect(s.seen()).toEqual(["a:2", "b:-"]);
    expect(s.view.rememberedChanges).toBe(0);
    s.store.close();
  });

  it("keeps showing a deleted device until the delay has passed, in deviceId order, and resumes after an id", () => {
    const s = setup(1000);
    for (const id of ["a", "b", "c"]) s.registry.identities.create(id, {});
    s.advance(1001);
    s.registry.identities.delete("b", "*");
    s.registry.identities.create("bb", {});
    expect(s.seen()).toEqual(["a:-", "b:-", "c:-"]);
    expect(s.view.size).toBe(3);
    expect([...s.view.scan("a")].map((t) => t.deviceId)).toEqual(["b", "c"]);
    expect([...s.view.scan("b")].map((t) => t.deviceId)).toEqual(["c"]);
    s.advance(1001);
    expect(s.seen()).toEqual(["a:-", "bb:-", "c:-"]);
    expect(s.view.size).toBe(3);
    s.store.close();
  });

  it("stays bounded: close changes of one device coalesce, and the total is capped", () => {
    const s = setup(1600, 50);
    s.registry.identities.create("a", {});
    s.advance(2000);
    // 1,000 patches 1 ms apart: the view keeps one entry per 100 ms (delay / 16) at most
    for (let i = 1; i <= 1000; i++) {
      s.patch("a", i);
      s.advance(1);
    }
    expect(s.view.rememberedChanges).toBeLessThanOrEqual(11);
    for (let i = 0; i < 200; i++) s.registry.identities.create(`d${i}`, {});
    expect(s.view.rememberedChanges).toBeLessThanOrEqual(50);
    // dropping entries early only makes the view newer: it never shows anything older than delayMs
    s.advance(1600);
    expect(s.seen().filter((x) => x.startsWith("a:"))).toEqual(["a:1000"]);
    s.store.close();
  });
});

describe("a hub with queryDelayMs", () => {
  const hubs: Array<{ cleanup(): Promise<void> }> = [];
  afterEach(async () => {
    await Promise.all(hubs.splice(0).map((h) => h.cleanup()));
  });

  it("answers queries with the old twin while GET returns the new one, until the delay has passed", async () => {
    const hub = await startTestHub({ inMemory: true, queryDelayMs: 1500 });
    hubs.push(hub);
    const registry = registryFor(hub.serviceConnectionString, hub.caPem);
    const id = TUTORIAL_DEVICE.deviceId;
    // the tutorial device was registered at start: let that settle first
    await new Promise((r) => setTimeout(r, 1600));
    await registry.updateTwin(id, { tags: { plant: "Redmond43" } }, "*");
    const written = await twinOf(registry, id);
    expect(written.tags).toEqual({ plant: "Redmond43" });
    const query = "SELECT * FROM devices WHERE tags.plant = 'Redmond43'";
    const before = await registry.createQuery(query).nextAsTwin();
    expect(before.result).toEqual([]);
    const all = (await registry.createQuery("SELECT * FROM devices").nextAsTwin())
      .result as unknown as TwinDocument[];
    expect(all.map((t) => [t.deviceId, t.version])).toEqual([[id, written.version - 1]]);
    await new Promise((r) => setTimeout(r, 1600));
    const after = (await registry.createQuery(query).nextAsTwin()).result as unknown as TwinDocument[];
    expect(after.map((t) => [t.deviceId, t.version])).toEqual([[id, written.version]]);
  }, 20_000);

  it("rejects a negative delay at start", async () => {
    await expect(startTestHub({ inMemory: true, queryDelayMs: -1 })).rejects.toThrow(
      /invalid query delay -1/,
    );
  });
});
