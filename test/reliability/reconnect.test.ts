import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startHub as startHubInProcess } from "../../src/hub/index.js";
import { connectDevice, eventually, registryFor } from "../hub/support.js";
import { CLI, type HubProcess, rest, serviceToken, spawnHub } from "./support.js";

/**
 * Reconnect: a running `report-connectivity` (the built CLI, without --once) survives its hub being killed
 * and restarted. While it is away the service changes desired properties (on a hub instance the device
 * cannot reach: same data directory, another port). Once the hub is back on its port, the CLI must
 * reconnect by itself within 30 s, read the twin again and print the desired update it missed, keep
 * printing live updates, and its reported state must still be there exactly once: not lost, not written
 * again.
 */

interface Event {
  event: string;
  version?: number | null;
  patch?: Record<string, unknown>;
  reported?: Record<string, unknown>;
  reportedVersion?: number | null;
}

describe("reconnect: report-connectivity survives a hub restart", () => {
  const dir = mkdtempSync(join(tmpdir(), "reconnect-"));
  const dataDir = join(dir, "data");
  const hubs: HubProcess[] = [];
  let cli: ChildProcess | undefined;
  afterAll(async () => {
    cli?.kill("SIGKILL");
    await Promise.all(hubs.map((h) => h.kill("SIGKILL")));
    rmSync(dir, { recursive: true, force: true });
  });

  const startHub = async (port?: number, envName = ".env") => {
    const hub = await spawnHub(dataDir, join(dir, envName), { port });
    hubs.push(hub);
    return hub;
  };
  const twin = async (hub: HubProcess) =>
    (await rest(hub, "GET", "/twins/myDeviceId", { auth: serviceToken(hub) })).json<{
      connectionState: string;
      properties: {
        desired: Record<string, unknown> & { $version: number };
        reported: Record<string, unknown> & { $version: number; $metadata: unknown };
      };
    }>();
  const setDesired = async (hub: HubProcess, desired: Record<string, unknown>) => {
    const res = await rest(hub, "PATCH", "/twins/myDeviceId", {
      auth: serviceToken(hub),
      body: JSON.stringify({ properties: { desired } }),
      headers: { "if-match": "*" },
    });
    expect(res.status, res.body).toBe(200);
    return res.json<{ properties: { desired: { $version: number } } }>().properties.desired.$version;
  };

  it("reconnects within 30 s, prints what it missed, and keeps its reported state exactly once", async () => {
    const first = await startHub();
    const port = first.port;

    // The CLI, as a user runs it, with the env file the hub wrote.
    cli = spawn(process.execPath, [CLI.reportConnectivity, "--json", "--env-file", join(dir, ".env")], {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    cli.stdout?.on("data", (d) => (out += d));
    cli.stderr?.on("data", (d) => (err += d));
    let exited: number | null | undefined;
    cli.on("exit", (code) => {
      exited = code;
    });
    const events = (): Event[] =>
      out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Event);
    const context = () => `stdout:\n${out}\nstderr:\n${err}`;

    const reported = await eventually(() => events().find((e) => e.event === "reported"), 30_000);
    expect(reported.reported, context()).toEqual({ connectivity: { type: "cellular" } });
    const before = await twin(first);
    expect(before.connectionState).toBe("Connected");
    const reportedVersion = before.properties.reported.$version;
    expect(reported.reportedVersion).toBe(reportedVersion);

    // A live update reaches it (the subscription works before anything else happens).
    const live1 = await setDesired(first, { phase: "before" });
    await eventually(() => events().find((e) => e.event === "desired" && e.version === live1), 20_000);

    // The hub dies without warning.
    expect((await first.kill("SIGKILL")).signal).toBe("SIGKILL");

    // While the device is away: the same hub (same data) on another port the device does not know about
    // takes a desired change, then stops cleanly.
    const away = await startHub(undefined, ".env-away");
    expect(away.port).not.toBe(port);
    expect((await twin(away)).connectionState).toBe("Disconnected");
    const missed = await setDesired(away, { phase: "while away", firmware: "2.0" });
    expect((await away.kill("SIGTERM")).code).toBe(0);

    // The hub comes back on the device's port. From here the CLI has 30 s to be connected again and to
    // have printed the change it missed.
    const back = await startHub(port);
    const backAt = Date.now();
    const resynced = await eventually(
      () => events().find((e) => e.event === "desired" && e.version === missed),
      30_000,
    ).catch(() => {
      throw new Error(
        `report-connectivity did not print the missed desired update within 30 s\n${context()}`,
      );
    });
    const reconnectSeconds = (Date.now() - backAt) / 1000;
    expect(resynced.patch, context()).toMatchObject({ phase: "while away", firmware: "2.0" });
    expect(exited, context()).toBeUndefined();
    await eventually(
      async () => ((await twin(back)).connectionState === "Connected" ? true : undefined),
      30_000,
    );

    // Live again: a new change made now is printed too, once.
    const live2 = await setDesired(back, { phase: "after" });
    await eventually(() => events().find((e) => e.event === "desired" && e.version === live2), 20_000);
    const desiredVersions = events()
      .filter((e) => e.event === "desired")
      .map((e) => e.version);
    expect(desiredVersions.filter((v) => v === missed)).toHaveLength(1);
    expect(desiredVersions.filter((v) => v === live2)).toHaveLength(1);
    // Versions printed only ever go up.
    expect([...desiredVersions].sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(desiredVersions);

    // The reported state survived the kill and was not written a second time.
    const after = await twin(back);
    const { $version, $metadata: _m, ...reportedNow } = after.properties.reported;
    expect(reportedNow).toEqual({ connectivity: { type: "cellular" } });
    expect($version).toBe(reportedVersion);
    expect(events().filter((e) => e.event === "reported")).toHaveLength(1);

    // And it still stops cleanly on SIGTERM.
    const stopped = new Promise<number | null>((r) => cli?.once("exit", (code) => r(code)));
    cli.kill("SIGTERM");
    expect(await stopped, context()).toBe(0);
    console.log(
      `[reliability] reconnect: report-connectivity reconnected and printed the missed update ${reconnectSeconds.toFixed(1)} s after the hub came back`,
    );
  }, 120_000);

  it("an SDK device keeps receiving desired updates after the hub restarts (persistent MQTT session)", async () => {
    // The device SDK connects with CleanSession=0 and, after reconnecting by itself, does not subscribe
    // again: it relies on IoT Hub keeping the session's subscriptions. A hub that forgot them when it
    // restarted would leave every SDK device deaf to desired updates from then on.
    const data = join(dir, "sdk-data");
    let hub = await startHubInProcess({ port: 0, dataDir: data, quiet: true });
    const port = hub.port;
    const client = await connectDevice(hub.deviceConnectionString(), hub.caPem);
    try {
      const twin = await client.getTwin();
      const seen: number[] = [];
      twin.on("properties.desired", (delta: { $version?: number }) => {
        if (typeof delta.$version === "number") seen.push(delta.$version);
      });
      const patch = async (n: number) => {
        const registry = registryFor(hub.serviceConnectionString, hub.caPem);
        const res = await registry.updateTwin("myDeviceId", { properties: { desired: { n } } }, "*");
        return (res.responseBody as unknown as { properties: { desired: { $version: number } } }).properties
          .desired.$version;
      };
      const v1 = await patch(1);
      await eventually(() => (seen.includes(v1) ? true : undefined), 20_000);

      // The hub stops and starts again on the same port with the same data; the SDK reconnects by itself.
      const reconnected = new Promise<void>((r) => client.once("connect", () => r()));
      await hub.stop();
      hub = await startHubInProcess({ port, dataDir: data, quiet: true });
      await reconnected;

      const v2 = await patch(2);
      await eventually(() => (seen.includes(v2) ? true : undefined), 20_000).catch(() => {
        throw new Error(`desired update ${v2} never reached the reconnected device (saw ${seen.join(", ")})`);
      });
    } finally {
      await client.close().catch(() => {});
      await hub.stop();
    }
  });
});
