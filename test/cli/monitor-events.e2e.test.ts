import { createServer } from "node:net";
import { Message } from "azure-iot-device";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEV_POLICIES } from "../../src/hub/index.js";
import { connectDevice } from "../hub/support.js";
import { expectFailure, run, start, startTestHub, type TestHub } from "./support.js";

const SERVICE_KEY = DEV_POLICIES.find((p) => p.name === "service")!.primaryKey;

describe("monitor-events (built CLI, child process)", () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub();
    const device = await connectDevice(t.hub.deviceConnectionString(), t.hub.caPem);
    const m = new Message(JSON.stringify({ temperature: 21.5 }));
    m.messageId = "first";
    m.properties.add("alert", "no");
    await device.sendEvent(m);
    await device.sendEvent(new Message("plain text"));
    await device.close();
  }, 30_000);
  afterAll(() => t?.close());

  it("prints each message with --json, shaped like az iot hub monitor-events", async () => {
    const result = await run(
      "monitor-events",
      ["--env-file", t.envFile, "--start", "earliest", "--count", "2", "--json"],
      {
        timeoutMs: 30_000,
      },
    );
    expect(result.code, result.stderr).toBe(0);
    const events = result.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).event);
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({
      origin: "myDeviceId",
      payload: { temperature: 21.5 },
      properties: {
        application: { alert: "no" },
        system: { "iothub-message-source": "Telemetry", messageId: "first" },
      },
      sequenceNumber: 0,
    });
    expect(events[1].payload).toBe("plain text");
  }, 40_000);

  it("prints messages as they arrive, and only the chosen device's with --device", async () => {
    // From a time rather than "latest", so the message cannot slip in before the receivers are attached.
    const since = new Date(Date.now() - 1).toISOString();
    const monitor = start("monitor-events", [
      "--env-file",
      t.envFile,
      "--device",
      "myDeviceId",
      "--count",
      "1",
      "--start",
      since,
    ]);
    await monitor.waitForStderr(/Monitoring/, 20_000);
    const device = await connectDevice(t.hub.deviceConnectionString(), t.hub.caPem);
    await device.sendEvent(new Message(JSON.stringify({ live: true })));
    await device.close();
    const result = await monitor.exited;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^event from myDeviceId \(partition \d, sequence 2, /m);
    expect(result.stdout).toContain('body:       {"live":true}');
  }, 40_000);

  it("fails clearly without EVENTHUB_CONNECTION_STRING, with an IoT Hub string in it, or with a wrong key", async () => {
    const missing = await run("monitor-events", [
      "--env-file",
      t.writeEnv("none.env", [`IOTHUB_CA_FILE=${t.hub.caFile}`]),
    ]);
    expectFailure(missing, 2);
    expect(missing.stderr).toMatch(/EVENTHUB_CONNECTION_STRING is not set/);

    const iotHub = await run("monitor-events", [
      "--env-file",
      t.writeEnv("iothub.env", [`EVENTHUB_CONNECTION_STRING=${t.hub.serviceConnectionString}`]),
    ]);
    expectFailure(iotHub, 2);
    expect(iotHub.stderr).toMatch(/IoT Hub connection string \(it has HostName\)/);

    const wrong = t.hub.eventHubConnectionString.replace(
      /SharedAccessKey=[^;]+/,
      `SharedAccessKey=${Buffer.from("wrong-key-wrong-key-wrong-key!!").toString("base64")}`,
    );
    const refused = await run(
      "monitor-events",
      [
        "--env-file",
        t.writeEnv("wrong.env", [`EVENTHUB_CONNECTION_STRING=${wrong}`, `IOTHUB_CA_FILE=${t.hub.caFile}`]),
        "--start",
        "earliest",
      ],
      { timeoutMs: 40_000 },
    );
    expectFailure(refused, 1, [SERVICE_KEY]);
    expect(refused.stderr).toMatch(/refused the key/);
  }, 60_000);

  it("says the endpoint cannot be reached when nothing listens there", async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((r) => server.close(() => r()));
    const cs = t.hub.eventHubConnectionString.replace(/sb:\/\/[^/]+\//, `sb://localhost:${port}/`);
    const result = await run(
      "monitor-events",
      [
        "--env-file",
        t.writeEnv("closed.env", [`EVENTHUB_CONNECTION_STRING=${cs}`, `IOTHUB_CA_FILE=${t.hub.caFile}`]),
      ],
      { timeoutMs: 40_000 },
    );
    expectFailure(result, 1, [SERVICE_KEY]);
    expect(result.stderr).toMatch(/cannot reach the Event Hubs-compatible endpoint/);
  }, 50_000);
});
