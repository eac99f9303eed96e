import { mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { run, start } from "./support.js";

/**
 * The README is for the people who run the tutorial: it stays short, and the output it shows for each step is
 * what the built tools really print. The tutorial section is run as written (a `local-hub` in a fresh folder,
 * `.env` from its --write-env, the tools in that folder) and each `text` block is compared line by line; only
 * the port numbers and the folder differ (the README shows 18883, 18884 and /home/me/device-twins), and a
 * README line with `...` stands for the real line with something left out there.
 */

const README = readFileSync(resolve(import.meta.dirname, "../../README.md"), "utf8");

function tutorialSection(): string {
  const from = README.indexOf("## The tutorial, step by step, on the local hub");
  const to = README.indexOf("\n## ", from + 1);
  expect(from, "the README has no tutorial section").toBeGreaterThanOrEqual(0);
  return README.slice(from, to);
}

function textBlocks(section: string): string[][] {
  return [...section.matchAll(/```text\n([\s\S]*?)```/g)].map((m) => m[1]!.trimEnd().split("\n"));
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Each README line matches the real line: exactly, or with `...` standing for any text. */
function expectLines(real: string[], shown: string[], what: string) {
  expect(real.length, `${what}: real output\n${real.join("\n")}`).toBe(shown.length);
  shown.forEach((line, i) => {
    const pattern = new RegExp(`^${line.split("...").map(escapeRegExp).join(".*")}$`);
    expect(real[i], `${what}, line ${i + 1}`).toMatch(pattern);
  });
}

describe("README.md", () => {
  it("is under 300 lines, none over 120 characters", () => {
    const lines = README.split("\n");
    expect(lines.length).toBeLessThanOrEqual(300);
    expect(lines.map((l, i) => [i + 1, l.length]).filter(([, n]) => (n as number) > 120)).toEqual([]);
  });

  describe("the tutorial step by step, run as written", () => {
    const folder = realpathSync(mkdtempSync(join(tmpdir(), "readme-")));
    afterAll(() => rmSync(folder, { recursive: true, force: true }));

    it("prints what the README shows at each step", async () => {
      const [hubOut, step3, step4, step5, change3, step6] = textBlocks(tutorialSection());
      expect(step6, "the README's tutorial has fewer text blocks than steps").toBeDefined();
      const inline = /Terminal 2 prints `(Desired properties changed \(version 4\): [^`]*)`/.exec(
        README,
      )?.[1];
      expect(inline).toBeDefined();

      const hub = start("local-hub", ["--port", "0", "--write-env", ".env"], { cwd: folder });
      let device: ReturnType<typeof start> | undefined;
      try {
        await hub.waitForStdout(/Press Ctrl-C to stop\./);
        const [, port] = /listening on localhost:(\d+)/.exec(hub.stdout())!;
        const [, amqpPort] = /amqp:\s+localhost:(\d+)/.exec(hub.stdout())!;
        const normal = (text: string) =>
          text
            .replaceAll(`localhost:${port}`, "localhost:18883")
            .replaceAll(`localhost:${amqpPort}`, "localhost:18884")
            .replaceAll(folder, "/home/me/device-twins")
            .trimEnd()
            .split("\n");
        // --write-env adds its "wrote .env" line: the README's `npx local-hub` has none.
        expectLines(
          normal(hub.stdout()).filter((l) => l !== "wrote .env"),
          hubOut!,
          "step 1, local-hub",
        );

        const tool = async (args: string[]) => {
          const result = await run("add-tags-and-query", args, { cwd: folder });
          expect(result.code, result.stderr).toBe(0);
          return normal(result.stdout);
        };
        expectLines(await tool([]), step3!, "step 3, add-tags-and-query");

        device = start("report-connectivity", [], { cwd: folder });
        await device.waitForStdout(/Waiting for desired property updates/);
        expectLines(normal(device.stdout()), step4!, "step 4, report-connectivity");

        expectLines(
          await tool(["--plant", "Redmond44"]),
          step5!,
          "step 5, add-tags-and-query --plant Redmond44",
        );
        await device.waitForStdout(/version 3/);
        expectLines(normal(device.stdout()).slice(step4!.length), change3!, "step 5, the device app");

        expectLines(await tool([]), step6!, "step 6, add-tags-and-query");
        await device.waitForStdout(/version 4/);
        expectLines(normal(device.stdout()).slice(step4!.length + 1), [inline!], "step 6, the device app");

        // "Stop the device app and the hub with Ctrl-C: the device app prints `Disconnected.`, the hub
        // `SIGINT: stopping local-hub`, and both exit 0."
        device.child.kill("SIGINT");
        const deviceEnd = await device.exited;
        expect(deviceEnd.code).toBe(0);
        expect(deviceEnd.stdout.trimEnd().split("\n").at(-1)).toBe("Disconnected.");
        hub.child.kill("SIGINT");
        const hubEnd = await hub.exited;
        expect(hubEnd.code).toBe(0);
        expect(hubEnd.stdout).toContain("SIGINT: stopping local-hub");
      } finally {
        device?.child.kill("SIGKILL");
        hub.child.kill("SIGKILL");
      }
    }, 90_000);
  });
});
