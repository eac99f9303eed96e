import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DeviceRegistry } from "../../../src/hub/registry/registry.js";
import { SqliteStore } from "../../../src/hub/store/sqlite.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "store-"));
  dirs.push(dir);
  return dir;
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe("SqliteStore: a device's identity, twin and session in rows apart", () => {
  it("a reported patch writes the twin's version and reported section, and nothing else", async () => {
    const store = new SqliteStore(dataDir());
    const registry = new DeviceRegistry(store);
    registry.identities.create("d1", {});
    registry.twins.updateTwin("d1", { tags: { t: 1 }, properties: { desired: { d: 1 } } }, undefined, false);
    const rows = () => ({
      identity: store.database.prepare("SELECT doc FROM identities WHERE id = 'd1'").pluck().get(),
      twin: store.database.prepare("SELECT * FROM twins WHERE id = 'd1'").get() as Record<string, unknown>,
      session: store.database.prepare("SELECT doc FROM sessions WHERE id = 'd1'").pluck().get(),
    });
    const before = rows();
    registry.twins.updateReported("d1", { r: { x: [1, 2] } });
    await turn();
    const after = rows();
    expect(after.identity).toBe(before.identity);
    expect(after.session).toBe(before.session);
    expect(after.twin.tags).toBe(before.twin.tags);
    expect(after.twin.desired).toBe(before.twin.desired);
    const record = registry.require("d1");
    expect(after.twin.version).toBe(record.twin.version);
    // The section as JSON.stringify would write it, built from the properties' text of the patch's size check.
    expect(after.twin.reported).toBe(JSON.stringify(record.twin.reported));
    registry.close();
    store.close();
  });

  it("a restarted hub loads every device as it was (disconnected), lastActivityTime included after a clean stop", async () => {
    const dir = dataDir();
    const store = new SqliteStore(dir);
    const registry = new DeviceRegistry(store);
    registry.identities.create("sas-1", {});
    registry.identities.create("x509-1", {
      authentication: { type: "selfSigned", x509Thumbprint: { primaryThumbprint: "AB".repeat(20) } },
      capabilities: { iotEdge: true },
    });
    registry.identities.create("gone", {});
    registry.identities.update("sas-1", { status: "disabled", statusReason: "why" }, "*");
    registry.twins.updateTwin(
      "x509-1",
      { tags: { a: { b: true } }, properties: { desired: { d: 1 } } },
      "*",
      false,
    );
    registry.sessions.setConnected("x509-1", true);
    registry.sessions.setSessionSubscription("x509-1", "desiredSubscribed", true);
    registry.sessions.setSessionSubscription("x509-1", "methodsSubscribed", true);
    registry.sessions.setCloudToDeviceSubscription("x509-1", true, 1234);
    registry.twins.updateReported("x509-1", { connectivity: { type: "cellular" } });
    registry.twins.updateReported("sas-1", { n: 1 });
    registry.sessions.touch("sas-1");
    await turn();
    registry.identities.delete("gone", "*");
    registry.twins.updateReported("sas-1", { n: null, m: [1, { k: "v" }] });
    const expected = ["sas-1", "x509-1"].map((id) => ({
      ...registry.require(id),
      connectionState: "Disconnected",
    }));
    registry.close();
    store.close();

    const reopened = new SqliteStore(dir);
    const restarted = new DeviceRegistry(reopened);
    expect(restarted.size).toBe(2);
    expect(["sas-1", "x509-1"].map((id) => restarted.require(id))).toStrictEqual(expected);
    reopened.close();
  });
});
