import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { escapeForLog, perKeyLimit } from "../../src/hub/log.js";
import { rest } from "../reliability/support.js";
import { mqttPacket as P, rawMqtt } from "./mqtt-raw.js";
import { eventually, startTestHub } from "./support.js";

const hasControl = (line: string) => [...line].some((c) => c.charCodeAt(0) < 0x20 || c === "\x7f");

describe("log lines cannot be forged or flooded by clients", () => {
  it("escapes control characters, DEL, C1 and Unicode line separators", () => {
    expect(escapeForLog("dev\n[local-hub] MQTT admin connected")).toBe(
      "dev\\x0a[local-hub] MQTT admin connected",
    );
    expect(escapeForLog("a\r\x1b[2Jb\x7f\x85\u2028c\td")).toBe("a\\x0d\\x1b[2Jb\\x7f\\x85\\u2028c\\x09d");
    expect(escapeForLog("plain ASCII and ünïcödé stay")).toBe("plain ASCII and ünïcödé stay");
  });

  it("lets each key log a few lines per window, then one summary line", () => {
    const out: string[] = [];
    let t = 0;
    const log = perKeyLimit(
      (l) => out.push(l),
      { lines: 3, windowMs: 1000, maxKeys: 2 },
      () => t,
    );
    for (let i = 0; i < 100; i++) log("a", `a ${i}`);
    log("b", "b 0");
    expect(out).toEqual(["a 0", "a 1", "a 2", "b 0"]);
    t = 1000;
    log("a", "a again");
    expect(out.slice(4)).toEqual(["97 more log lines about a were suppressed", "a again"]);
    // Beyond maxKeys the key whose window began first is forgotten: the map stays bounded.
    log("c", "c 0");
    log("d", "d 0");
    expect(out.slice(-2)).toEqual(["c 0", "d 0"]);
  });

  describe("through a real hub", () => {
    let hub: Awaited<ReturnType<typeof startTestHub>>;
    const lines: string[] = [];
    beforeAll(async () => {
      hub = await startTestHub({ quiet: false, log: (l) => lines.push(l) });
    });
    afterAll(async () => {
      await hub.cleanup();
    });

    it("a client ID with a newline and a terminal escape stays on one escaped line", async () => {
      const evil = "x\n[local-hub] MQTT myDeviceId connected\x1b[2J";
      const c = await rawMqtt(hub.port, hub.caPem);
      c.write(P.connect(evil, `${hub.hostName}/${evil}/?api-version=2021-04-12`, "SharedAccessSignature x"));
      await c.waitClosed();
      await eventually(() => (lines.some((l) => l.includes("connect refused")) ? true : undefined));
      for (const l of lines) expect(hasControl(l), l).toBe(false);
      expect(lines.find((l) => l.includes("connect refused"))).toContain(
        "x\\x0a[local-hub] MQTT myDeviceId connected\\x1b[2J",
      );
      // REST paths go through the same function.
      await rest(hub, "GET", "/twins/a%0Ab%1B", { auth: "x" });
      for (const l of lines) expect(hasControl(l), l).toBe(false);
    });

    it("one device refused 200 times writes about 20 lines, not 200", async () => {
      const before = lines.length;
      for (let i = 0; i < 200; i++) {
        const c = await rawMqtt(hub.port, hub.caPem);
        c.write(
          P.connect("noisy", `${hub.hostName}/noisy/?api-version=2021-04-12`, "SharedAccessSignature x"),
        );
        await c.waitClosed();
      }
      const about = lines.slice(before).filter((l) => l.includes("noisy"));
      expect(about.length).toBeLessThanOrEqual(21);
      expect(about.length).toBeGreaterThanOrEqual(1);
    }, 60_000);
  });
});
