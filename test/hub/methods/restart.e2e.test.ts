import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type RunningHub, startHub } from "../../../src/hub/index.js";
import { closed } from "../../reliability/support.js";
import { registryFor } from "../support.js";
import { answer, type Hub, invokeRaw, newDevice, rawDevice, receiveMethods } from "./support.js";

describe("direct methods: a persistent session's subscription survives a hub restart", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "hub-methods-restart-"));
  const hubs: RunningHub[] = [];
  const start = async () => {
    const hub = await startHub({ port: 0, dataDir, quiet: true });
    hubs.push(hub);
    return hub as Hub;
  };
  afterAll(async () => {
    for (const hub of hubs) await hub.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("subscribed before the restart, reconnected after it without subscribing: methods still arrive", async () => {
    const first = await start();
    const { key } = await newDevice(first, registryFor(first.serviceConnectionString, first.caPem), "keeper");
    const before = await rawDevice(first, "keeper", key, { clean: false });
    await receiveMethods(before);
    before.end(true);
    await closed(before);
    await first.stop();

    const second = await start();
    const after = await rawDevice(second, "keeper", key, { clean: false });
    try {
      after.on("message", (topic, payload) => {
        const rid = /\?\$rid=(.+)$/.exec(topic)?.[1];
        if (rid) void answer(after, 200, rid, payload);
      });
      const res = await invokeRaw(second, "keeper", { methodName: "echo", payload: { after: "restart" } });
      expect([res.status, res.json()]).toEqual([200, { status: 200, payload: { after: "restart" } }]);
    } finally {
      after.end(true);
    }
  });
});
