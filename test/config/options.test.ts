import { describe, expect, it } from "vitest";
import { ConfigError, parseInteger, parseName, parseSeconds } from "../../src/config/index.js";

function rejects(run: () => unknown, flag: string): void {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain(flag);
    expect((error as ConfigError).exitCode).toBe(2);
    return;
  }
  throw new Error("expected a ConfigError");
}

describe("flag values", () => {
  it("accepts plain names and trims them", () => {
    expect(parseName("--plant", " Redmond 43 ", "Redmond43")).toBe("Redmond 43");
    expect(parseName("--type", "wi-fi_6.0", "cellular")).toBe("wi-fi_6.0");
  });

  it.each(["", "   ", "a'b", 'a"b', "a\\b", "a`b", "a\nb", "x".repeat(129)])(
    "rejects the name %j",
    (value) => {
      rejects(() => parseName("--plant", value, "Redmond43"), "--plant");
    },
  );

  it("parses whole numbers in range", () => {
    expect(parseInteger("--page-size", "2", 1, 1000)).toBe(2);
    expect(parseInteger("--page-size", " 1000 ", 1, 1000)).toBe(1000);
  });

  it.each(["0", "1001", "-1", "2.5", "abc", "", "1e3"])("rejects the page size %j", (value) => {
    rejects(() => parseInteger("--page-size", value, 1, 1000), "--page-size");
  });

  it("parses seconds, fractions included", () => {
    expect(parseSeconds("--wait", "0", 0, 3600)).toBe(0);
    expect(parseSeconds("--timeout", "1.5", 0.1, 3600)).toBe(1.5);
  });

  it.each(["-1", "abc", "", "3601", "0", "1,5"])("rejects the timeout %j", (value) => {
    rejects(() => parseSeconds("--timeout", value, 0.1, 3600), "--timeout");
  });
});
