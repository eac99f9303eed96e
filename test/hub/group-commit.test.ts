import { describe, expect, it } from "vitest";
import { DeviceRegistry } from "../../src/hub/registry/registry.js";
import type { Store } from "../../src/hub/store/store.js";
import type { DeviceRecord } from "../../src/hub/twin/device.js";

/** A store that records each transaction and can be told to fail the next one. */
class RecordingStore implements Store {
  readonly rows = new Map<string, string>();
  readonly transactions: string[][] = [];
  failNext = false;
  loadAll(): DeviceRecord[] {
    return [...this.rows.values()].map((doc) => JSON.parse(doc));
  }
  put(record: DeviceRecord): void {
    this.putMany([record]);
  }
  putMany(records: readonly DeviceRecord[]): void {
    if (this.failNext) {
      this.failNext = false;
      throw new Error("disk full");
    }
    for (const r of records) this.rows.set(r.deviceId, JSON.stringify(r));
    this.transactions.push(records.map((r) => r.deviceId));
  }
  delete(deviceId: string): void {
    this.rows.delete(deviceId);
    this.transactions.push([`-${deviceId}`]);
  }
  close(): void {}
  reported(deviceId: string): unknown {
    const doc = this.rows.get(deviceId);
    return doc === undefined ? undefined : (JSON.parse(doc) as DeviceRecord).twin.reported.props;
  }
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

function setup() {
  const store = new RecordingStore();
  const registry = new DeviceRegistry(store);
  registry.identities.createMany(["a", "b", "c"].map((id) => ({ id, input: {} })));
  store.transactions.length = 0;
  return { store, registry };
}

describe("group commit of device-side changes", () => {
  it("writes the reported patches of one turn in one transaction, and answers only after it", async () => {
    const { store, registry } = setup();
    const answered: string[] = [];
    for (const id of ["a", "b", "c"]) {
      registry.twins.updateReported(id, { n: id });
      registry.afterCommit((error) =>
        answered.push(`${id}:${error ? "error" : "ok"}:${JSON.stringify(store.reported(id))}`),
      );
    }
    registry.sessions.setConnected("a", true);
    expect(answered).toEqual([]);
    expect(store.transactions).toEqual([]);
    await turn();
    expect(store.transactions).toEqual([["a", "b", "c"]]);
    expect(answered).toEqual(['a:ok:{"n":"a"}', 'b:ok:{"n":"b"}', 'c:ok:{"n":"c"}']);
    // Nothing waiting: answered at once.
    let now = false;
    registry.afterCommit(() => {
      now = true;
    });
    expect(now).toBe(true);
  });

  it("stores waiting changes before any service-side read or write, in order", () => {
    const { store, registry } = setup();
    registry.twins.updateReported("a", { n: 1 });
    const twin = registry.twins.twin("a");
    expect(twin.properties.reported.n).toBe(1);
    expect(store.reported("a")).toEqual({ n: 1 });
    registry.twins.updateReported("b", { n: 2 });
    registry.twins.updateTwin("b", { tags: { t: 1 } }, undefined, false);
    expect(store.transactions).toEqual([["a"], ["b"], ["b"]]);
    const stored = JSON.parse(store.rows.get("b")!) as DeviceRecord;
    expect(stored.twin.reported.props).toEqual({ n: 2 });
    expect(stored.twin.tags).toEqual({ t: 1 });
  });

  it("rolls the group back in memory and reports the error when the commit fails", async () => {
    const { store, registry } = setup();
    registry.twins.updateReported("a", { n: 1 });
    await turn();
    const version = registry.twins.twin("a").properties.reported.$version;
    registry.twins.updateReported("a", { n: 2 });
    registry.twins.updateReported("a", { n: 3 });
    const errors: Array<string | undefined> = [];
    registry.afterCommit((error) => errors.push(error?.message));
    store.failNext = true;
    await turn();
    expect(errors).toEqual(["disk full"]);
    expect(store.reported("a")).toEqual({ n: 1 });
    expect(registry.twins.twin("a").properties.reported).toMatchObject({ n: 1, $version: version });
    // The next change starts from what is stored.
    expect(registry.twins.updateReported("a", { n: 4 })).toBe(version + 1);
  });
});
