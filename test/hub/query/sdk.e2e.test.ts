import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Registry } from "azure-iothub";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TUTORIAL_DEVICE } from "../../../src/hub/auth/credentials.js";
import { startHub } from "../../../src/hub/index.js";
import { SqliteStore } from "../../../src/hub/store/sqlite.js";
import { Part } from "../../../src/hub/store/store.js";
import type { DeviceRecord, SectionState } from "../../../src/hub/twin/device.js";
import type { TwinDocument, TwinSection } from "../../../src/hub/twin/types.js";
import { registryFor, sdkErrorOf } from "../support.js";
import { CASES, ERROR_CASES } from "./cases.js";
import { FIXTURE, makeTwin } from "./fixture.js";

/**
 * The query cases again, this time through the real SDK (`registry.createQuery`) against a hub whose store
 * holds the fixture twins. They are written straight into the store because some fixture twins carry states
 * a patch cannot produce (explicit nulls, chosen versions and timestamps).
 */
function toRecord(doc: TwinDocument): DeviceRecord {
  const section = (s: TwinSection): SectionState => {
    const { $metadata, $version, ...props } = s;
    return { version: $version, props, meta: $metadata };
  };
  return {
    deviceId: doc.deviceId,
    generationId: "1",
    etag: doc.deviceEtag,
    status: doc.status,
    statusReason: null,
    statusUpdatedTime: doc.statusUpdateTime,
    connectionState: doc.connectionState,
    connectionStateUpdatedTime: doc.statusUpdateTime,
    lastActivityTime: doc.lastActivityTime,
    primaryKey: TUTORIAL_DEVICE.primaryKey,
    secondaryKey: TUTORIAL_DEVICE.secondaryKey,
    iotEdge: false,
    twin: {
      version: doc.version,
      tags: doc.tags,
      desired: section(doc.properties.desired),
      reported: section(doc.properties.reported),
    },
  };
}

/** A hub on a free port over a fresh data directory whose store already holds `twins`. */
async function seededHub(twins: TwinDocument[]) {
  const dir = mkdtempSync(join(tmpdir(), "hub-query-"));
  const store = new SqliteStore(dir);
  store.write(twins.map((twin) => ({ record: toRecord(twin), parts: Part.ALL })));
  store.close();
  const hub = await startHub({ port: 0, dataDir: dir, quiet: true });
  return {
    hub,
    registry: registryFor(hub.serviceConnectionString, hub.caPem),
    async cleanup() {
      await hub.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Fields the hub computes itself (and a connected flag it resets at start); cases do not look at them. */
function comparable(doc: Record<string, unknown>) {
  const { etag: _e, connectionState: _c, ...rest } = doc;
  return rest;
}

describe("query cases through the real SDK against the local hub", () => {
  let seeded: Awaited<ReturnType<typeof seededHub>>;
  let registry: Registry;

  beforeAll(async () => {
    seeded = await seededHub(FIXTURE);
    registry = seeded.registry;
  });
  afterAll(() => seeded.cleanup());

  /** Walks every page of a query with the SDK, as a user would. */
  async function all(query: string, pageSize: number, asTwin: boolean) {
    const q = registry.createQuery(query, pageSize);
    const items: unknown[] = [];
    do {
      // With promises, the SDK's next() must be handed the token: called bare it starts over from page one.
      const { result } = asTwin ? await q.nextAsTwin() : await q.next(q.continuationToken);
      items.push(...(result as unknown[]));
    } while (q.hasMoreResults);
    return items;
  }

  // The hub resets connectionState at start, so cases that depend on it are run by the unit suite only.
  const cases = CASES.filter((c) => !/connectionState/i.test(c.query));

  it("covers at least 80 cases end to end", () => {
    expect(cases.length).toBeGreaterThanOrEqual(80);
  });

  for (const c of cases) {
    it(`${c.source}: ${c.query}`, async () => {
      if (c.ids) {
        const twins = (await all(c.query, 3, true)) as Array<{ deviceId: string }>;
        expect(twins.map((t) => t.deviceId)).toEqual(c.ids);
        // A twin from a query is the twin GET returns (but for computed fields).
        const first = twins[0] as unknown as Record<string, unknown> | undefined;
        if (first) {
          const fixture = FIXTURE.find((t) => t.deviceId === first.deviceId) as unknown as Record<
            string,
            unknown
          >;
          expect(comparable(JSON.parse(JSON.stringify(first)))).toMatchObject(comparable(fixture));
        }
      } else {
        const rows = await all(c.query, 2, false);
        if (c.anyOrder) expect(rows).toEqual(expect.arrayContaining(c.rows ?? []));
        else expect(rows).toEqual(c.rows);
        expect(rows).toHaveLength(c.rows?.length ?? 0);
      }
    });
  }

  it("answers every error case with ArgumentError (400)", async () => {
    // The SDK itself refuses an empty query before sending it.
    for (const e of ERROR_CASES.filter((c) => c.query.trim() !== "")) {
      expect(await sdkErrorOf(registry.createQuery(e.query, 10).next()), e.query).toBe("ArgumentError");
    }
  });
});

describe("paging through the real SDK over 2,500 twins", () => {
  let seeded: Awaited<ReturnType<typeof seededHub>>;
  let registry: Registry;
  const N = 2500;

  beforeAll(async () => {
    seeded = await seededHub(
      Array.from({ length: N }, (_, i) =>
        makeTwin(`p${String(i).padStart(5, "0")}`, { tags: { even: i % 2 === 0 } }),
      ),
    );
    registry = seeded.registry;
  });
  afterAll(() => seeded.cleanup());

  for (const pageSize of [1, 7, 100, 1000]) {
    it(`page size ${pageSize}: every twin exactly once, with twins changing between pages`, async () => {
      const q = registry.createQuery(
        "SELECT * FROM devices WHERE tags.even = true OR tags.even = false",
        pageSize,
      );
      const seen = new Map<string, number>();
      let pages = 0;
      do {
        const { result } = await q.nextAsTwin();
        pages++;
        for (const t of result) seen.set(t.deviceId, (seen.get(t.deviceId) ?? 0) + 1);
        // A change to an already returned twin must not bring it back on a later page.
        if (pages === 2 && result[0])
          await registry.updateTwin(result[0].deviceId, { tags: { touched: pages } }, "*");
      } while (q.hasMoreResults);
      expect(seen.size).toBe(N);
      expect([...seen.values()].every((n) => n === 1)).toBe(true);
      // IoT Hub's maximum page size applies: at most 100 per page.
      expect(pages).toBe(Math.ceil(N / Math.min(pageSize, 100)));
    });
  }
});
