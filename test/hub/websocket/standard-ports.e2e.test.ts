import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startHub, TUTORIAL_DEVICE } from "../../../src/hub/index.js";

describe("unmodified SDK code over WebSockets only, against IoT Hub's standard ports (HostName=localhost)", () => {
  it("MqttWs: twin GET and reported PATCH; azure-iothub's Client with AmqpWs opens ($cbs over WebSockets)", async (ctx) => {
    let hub: Awaited<ReturnType<typeof startHub>>;
    try {
      hub = await startHub({ standardPorts: true, inMemory: true, quiet: true });
    } catch (error) {
      // Without the privilege to bind 443, 8883 and 5671, or with them taken, there is nothing to test here.
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EACCES" || code === "EADDRINUSE")
        return ctx.skip(`cannot bind IoT Hub's ports (${code})`);
      throw error;
    }
    try {
      expect(hub.hostName).toBe("localhost");
      const child = spawn(process.execPath, [join(import.meta.dirname, "unmodified-ws.cjs")], {
        env: {
          ...process.env,
          IOTHUB_CONNECTION_STRING: hub.serviceConnectionString,
          IOTHUB_DEVICE_CONNECTION_STRING: hub.deviceConnectionString(),
          IOTHUB_DEVICE_ID: TUTORIAL_DEVICE.deviceId,
          NODE_EXTRA_CA_CERTS: hub.caFile,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (out += d));
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
      expect(code, out).toBe(0);
      expect(JSON.parse(out)).toEqual({ via: "MqttWs", reportedVersion: 2, serviceOpened: true });
    } finally {
      await hub.stop();
    }
  }, 60_000);
});
