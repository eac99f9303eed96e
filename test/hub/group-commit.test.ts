import { afterEach, describe, expect, it, vi } from "vitest";
import { DeviceRegistry } from "../../src/hub/registry/registry.js";
import { ACTIVITY_FLUSH_MS } from "../../src/hub/registry/unit-of-work.js";
import { identityOf, recordOf, sessionOf } from "../../src/hub/store/rows.js";
import { Part, type RecordChange, type Store } from "../../src/hub/store/store.js";
import type { DeviceRecord, TwinState } from "../../src/hub/twin/device.js";
import { sectionJson } from "../../src/hub/twin/twin.js";

/**
 * A store that keeps each device's parts in rows apart, as SqliteStore does (a REPORTED write touches only the
 * twin's version and reported section), records each transaction as `device:parts`, and can be told to fail the
 * next one.
 */
class RecordingStore implements Store {
  readonly identities = new Map<string, string>();
  readonly twins = new Map<string, { version: number; tags: string; desired: string; reported: string }>();
  readonly sessions = new Map<string, string>();
  readonly transactions: string[][] = [];
  /** Writes of a reported section that came with its properties' text already made (checked to be right). */
  reportedTexts = 0;
  failNext = false;
  loadAll(): DeviceRecord[] {
    return [...this.identities.keys()].map((id) => this.stored(id)!);
  }
  write(changes: readonly RecordChange[], deleted: readonly string[] = []): void {
    if (this.failNext) {
      this.failNext = false;
      throw new Error("disk full");
    }
    const transaction: string[] = [];
    for (const id of deleted) {
      for (const rows of [this.identities, this.twins, this.sessions]) rows.delete(id);
      transaction.push(`-${id}`);
    }
    for (const { record: r, parts, texts } of changes) {
      const id = r.deviceId;
      if (texts?.reported !== undefined && parts & (Part.TWIN | Part.REPORTED)) {
        expect(texts.reported).toBe(JSON.stringify(r.twin.reported.props));
        this.reportedTexts++;
      }
      if (parts & Part.IDENTITY) this.identities.set(id, JSON.stringify(identityOf(r)));
      if (parts & Part.TWIN) {
        const { version, tags, desired, reported } = r.twin;
        this.twins.set(id, {
          version,
          tags: JSON.stringify(tags),
          desired: sectionJson(desired, texts?.desired),
          reported: sectionJson(reported, texts?.reported),
        });
      } else if (parts & Part.REPORTED) {
        const row = this.twins.get(id)!;
        this.twins.set(id, {
          ...row,
          version: r.twin.version,
          reported: sectionJson(r.twin.reported, texts?.reported),
        });
      }
      if (parts & (Part.SESSION | Part.ACTIVITY)) this.sessions.set(id, JSON.stringify(sessionOf(r)));
      transaction.push(`${id}:${partNames(parts)}`);
    }
    this.transactions.push(transaction);
  }
  delete(deviceId: string): void {
    this.write([], [deviceId]);
  }
  close(): void {}
  /** The device as a restarted hub would load it. */
  stored(deviceId: string): DeviceRecord | undefined {
    const identity = this.identities.get(deviceId);
    const twin = this.twins.get(deviceId);
    if (identity === undefined || twin === undefined) return undefined;
    const state: TwinState = {
      version: twin.version,
      tags: JSON.parse(twin.tags),
      desired: JSON.parse(twin.desired),
      reported: JSON.parse(twin.reported),
    };
    return recordOf(JSON.parse(identity), state, JSON.parse(this.sessions.get(deviceId) ?? "{}"));
  }
  reported(deviceId: string): unknown {
    return this.stored(deviceId)?.twin.reported.props;
  }
}

function partNames(parts: number): string {
  if (parts === Part.ALL) return "all";
  return (["IDENTITY", "TWIN", "REPORTED", "SESSION", "ACTIVITY"] as const)
    .filter((name) => parts & Part[name])
    .map((name) => name.toLowerCase())
    .join("+");
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

function setup() {
  const store = new RecordingStore();
  const registry = new DeviceRegistry(store);
  registry.identities.createMany(["a", "b", "c"].map((id) => ({ id, input: {} })));
  expect(store.transactions).toEqual([["a:all", "b:all", "c:all"]]);
  store.transactions.length = 0;
  return { store, registry };
}

afterEach(() => {
  vi.useRealTimers();
});

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
    // A reported patch writes its twin's reported section only, with the properties' text its size check made;
    // a's connection writes its session row.
    expect(store.transactions).toEqual([["a:reported+session", "b:reported", "c:reported"]]);
    expect(store.reportedTexts).toBe(3);
    expect(answered).toEqual(['a:ok:{"n":"a"}', 'b:ok:{"n":"b"}', 'c:ok:{"n":"c"}']);
    // Nothing waiting: answered at once.
    let now = false;
    registry.afterCommit(() => {
      now = true;
    });
    expect(now).toBe(true);
    // The stored twins are the ones in memory.
    for (const id of ["a", "b", "c"]) expect(store.stored(id)!.twin).toEqual(registry.find(id)!.twin);
  });

  it("stores waiting changes before any service-side read or write, in order", () => {
    const { store, registry } = setup();
    registry.twins.updateReported("a", { n: 1 });
    const twin = registry.twins.twin("a");
    expect(twin.properties.reported.n).toBe(1);
    expect(store.reported("a")).toEqual({ n: 1 });
    registry.twins.updateReported("b", { n: 2 });
    registry.twins.updateTwin("b", { tags: { t: 1 } }, undefined, false);
    expect(store.transactions).toEqual([["a:reported"], ["b:reported"], ["b:twin"]]);
    const stored = store.stored("b")!;
    expect(stored.twin.reported.props).toEqual({ n: 2 });
    expect(stored.twin.tags).toEqual({ t: 1 });
    registry.identities.update("c", { status: "disabled" }, "*");
    registry.identities.delete("a", "*");
    expect(store.transactions.slice(3)).toEqual([["c:identity"], ["-a"]]);
    expect(store.stored("c")!.status).toBe("disabled");
    expect(store.stored("a")).toBeUndefined();
  });

  it("rolls the group back in memory and reports the error when the commit fails", async () => {
    const { store, registry } = setup();
    registry.twins.updateReported("a", { n: 1 });
    await turn();
    const version = registry.twins.twin("a").properties.reported.$version;
    registry.twins.updateReported("a", { n: 2 });
    registry.twins.updateReported("a", { n: 3 });
    registry.sessions.setSessionSubscription("b", "desiredSubscribed", true);
    const errors: Array<string | undefined> = [];
    registry.afterCommit((error) => errors.push(error?.message));
    store.failNext = true;
    await turn();
    expect(errors).toEqual(["disk full"]);
    expect(store.reported("a")).toEqual({ n: 1 });
    expect(registry.twins.twin("a").properties.reported).toMatchObject({ n: 1, $version: version });
    expect(registry.find("b")!.desiredSubscribed).toBeUndefined();
    // The next change starts from what is stored.
    expect(registry.twins.updateReported("a", { n: 4 })).toBe(version + 1);
    await turn();
    expect(store.reported("a")).toEqual({ n: 4 });
  });
});

describe("lastActivityTime, written lazily", () => {
  it("is in memory at once but written only with the device's session row or by a flush", async () => {
    const { store, registry } = setup();
    const stored = (id: string) => store.stored(id)!.lastActivityTime;
    registry.sessions.touch("a");
    registry.twins.updateReported("b", { n: 1 });
    const touched = registry.find("a")!.lastActivityTime;
    expect(touched).not.toBe(stored("a"));
    // Nothing waits for an activity alone.
    let answered = false;
    registry.afterCommit(() => {
      answered = true;
    });
    expect(answered).toBe(false); // b's reported patch is waiting
    await turn();
    expect(answered).toBe(true);
    expect(store.transactions).toEqual([["b:reported"]]);
    expect(stored("a")).not.toBe(touched);
    expect(stored("b")).not.toBe(registry.find("b")!.lastActivityTime);

    // A session write carries the device's current activity along.
    registry.sessions.setSessionSubscription("a", "twinResponsesSubscribed", true);
    await turn();
    expect(store.transactions.at(-1)).toEqual(["a:session"]);
    expect(stored("a")).toBe(touched);

    // The flush writes what is left: b's.
    registry.flush();
    expect(store.transactions.at(-1)).toEqual(["b:activity"]);
    expect(stored("b")).toBe(registry.find("b")!.lastActivityTime);
    registry.flush();
    expect(store.transactions).toHaveLength(3);
    for (const id of ["a", "b", "c"]) expect(store.stored(id)).toEqual(registry.find(id));
  });

  it(`is flushed ${ACTIVITY_FLUSH_MS / 1000} s after it changed, and when the registry closes`, async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { store, registry } = setup();
    registry.sessions.touch("a");
    registry.sessions.touch("b");
    vi.advanceTimersByTime(ACTIVITY_FLUSH_MS - 1);
    expect(store.transactions).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(store.transactions).toEqual([["a:activity", "b:activity"]]);
    // A failed flush is tried again later; nothing is lost in memory.
    registry.sessions.touch("c");
    store.failNext = true;
    vi.advanceTimersByTime(ACTIVITY_FLUSH_MS);
    expect(store.transactions).toHaveLength(1);
    expect(registry.find("c")!.lastActivityTime).not.toBe(store.stored("c")!.lastActivityTime);
    vi.advanceTimersByTime(ACTIVITY_FLUSH_MS);
    expect(store.transactions.at(-1)).toEqual(["c:activity"]);
    // Closing writes the group and every activity still waiting.
    registry.twins.updateReported("a", { n: 1 });
    registry.close();
    expect(store.transactions.slice(2)).toEqual([["a:reported"], ["a:activity"]]);
    for (const id of ["a", "b", "c"]) expect(store.stored(id)).toEqual(registry.find(id));
    expect(vi.getTimerCount()).toBe(0);
  });
});
