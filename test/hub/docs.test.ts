import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { DEV_POLICIES, TUTORIAL_DEVICE } from "../../src/hub/auth/credentials.js";

describe("the local hub's documented development credentials (docs/local-hub.md)", () => {
  it("lists every policy with the key and permissions the hub uses", () => {
    const readme = readFileSync(resolve(import.meta.dirname, "../../docs/local-hub.md"), "utf8");
    for (const p of DEV_POLICIES) {
      const row = readme.split("\n").find((line) => line.startsWith(`| \`${p.name}\` `));
      expect(row, p.name).toBeDefined();
      expect(row).toContain(p.primaryKey);
      expect(row).toContain(p.permissions.join(", "));
    }
    expect(readme).toContain(TUTORIAL_DEVICE.primaryKey);
  });
});
