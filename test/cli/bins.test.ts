import { accessSync, constants, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");

describe("the tools' bins", () => {
  // npm makes a bin executable only when it links it, before the `prepare` build writes dist/ in a fresh clone;
  // without the build's own chmod, `npx local-hub` failed there with "Permission denied".
  it("every bin in package.json is built, executable, and starts with a node shebang", () => {
    const { bin } = JSON.parse(readFileSync(resolve(ROOT, "package.json"), "utf8")) as {
      bin: Record<string, string>;
    };
    expect(Object.keys(bin).sort()).toEqual([
      "add-tags-and-query",
      "local-hub",
      "monitor-events",
      "report-connectivity",
    ]);
    for (const file of Object.values(bin)) {
      const path = resolve(ROOT, file);
      expect(() => accessSync(path, constants.X_OK), `${file} is not executable`).not.toThrow();
      expect(readFileSync(path, "utf8").startsWith("#!/usr/bin/env node\n"), file).toBe(true);
    }
  });
});
