import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";
import { OWNER_KEY, run } from "./support.js";

const leftovers = () => readdirSync(tmpdir()).filter((name) => name.startsWith("device-twins-tutorial-"));

describe("npm start (dist/cli/tutorial.js)", () => {
  it("runs the whole tutorial on an embedded hub, prints the before/after and exits 0", async () => {
    const before = leftovers();
    // Settings the user may have exported for Azure must not leak into the tutorial.
    const result = await run("tutorial", [], {
      env: {
        IOTHUB_CONNECTION_STRING: "HostName=elsewhere.invalid;SharedAccessKeyName=x;SharedAccessKey=eA==",
      },
      timeoutMs: 60_000,
    });
    expect(result.code, result.stderr).toBe(0);
    const out = result.stdout;
    expect(out).toMatch(/Started a local IoT Hub on localhost:\d+/);
    const steps = [
      "$ npx add-tags-and-query",
      "$ npx report-connectivity --once",
      "$ npx add-tags-and-query",
    ];
    let at = 0;
    for (const step of steps) {
      at = out.indexOf(step, at);
      expect(at, step).toBeGreaterThan(0);
    }
    expect(out).toMatch(/^ {4}Devices in Redmond43 using cellular network: \(none\)$/m);
    expect(out).toMatch(/^ {4}Reported connectivity\.type = cellular/m);
    expect(out).toMatch(/^ {4}Devices in Redmond43 using cellular network: myDeviceId$/m);
    expect(out).toContain("Before: myDeviceId in Redmond43: yes, using cellular: no");
    expect(out).toContain("After:  myDeviceId in Redmond43: yes, using cellular: yes");
    expect(out).not.toContain(OWNER_KEY);
    expect(leftovers()).toEqual(before);
  });
});
