import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Authorizer } from "../../../src/hub/auth/authorizer.js";
import { DEV_POLICIES } from "../../../src/hub/auth/credentials.js";
import { makeToken, parseToken, sign, signedByOneOf } from "../../../src/hub/auth/sas.js";
import { HubError } from "../../../src/hub/errors.js";

const KEY = Buffer.from("0123456789abcdef0123456789abcdef").toString("base64");
const OTHER = Buffer.from("fedcba9876543210fedcba9876543210").toString("base64");
const NOW = 1_800_000_000_000;
const LATER = NOW / 1000 + 600;

describe("SAS tokens", () => {
  it("parses what it makes and verifies the signature over the resource as written", () => {
    const token = makeToken(KEY, "localhost:1234/devices/d1", LATER);
    const parsed = parseToken(token);
    expect(parsed?.resource).toBe("localhost:1234/devices/d1");
    expect(parsed?.rawResource).toBe("localhost%3A1234%2Fdevices%2Fd1");
    expect(parsed && signedByOneOf(parsed, [OTHER, KEY])).toBe(true);
    expect(parsed && signedByOneOf(parsed, [OTHER])).toBe(false);
  });

  it("matches the documented signature: HMAC-SHA256 over '<sr>\\n<se>'", () => {
    // Independent of makeToken: the SDKs sign exactly this string.
    const sig = sign(KEY, "myhub.azure-devices.net", 1700000000);
    expect(sig).toBe(
      createHmac("sha256", Buffer.from(KEY, "base64"))
        .update("myhub.azure-devices.net\n1700000000")
        .digest("base64"),
    );
  });

  it("rejects malformed tokens", () => {
    for (const bad of [
      undefined,
      "",
      "Bearer abc",
      "SharedAccessSignature ",
      "SharedAccessSignature sr=a&sig=b",
      "SharedAccessSignature sr=a&sig=b&se=soon",
      "SharedAccessSignature sr=a&sr=b&sig=c&se=1",
      "SharedAccessSignature sr=%E0%A4%A&sig=c&se=1",
    ]) {
      expect(parseToken(bad)).toBeUndefined();
    }
  });
});

describe("SAS tokens: hostile spellings are refusals, never exceptions", () => {
  it("refuses a malformed percent escape in any field (skn=%E0 used to throw a URIError)", () => {
    const good = makeToken(KEY, "localhost:1234/devices/d1", LATER);
    for (const bad of [
      `${good}&skn=%E0`,
      `${good}&skn=%`,
      good.replace("sig=", "sig=%E0"),
      `${good}&skn=%ZZ`,
    ]) {
      expect(() => parseToken(bad)).not.toThrow();
      expect(parseToken(bad)).toBeUndefined();
    }
  });

  it("accepts only the canonical base64 spelling of the signature", () => {
    const good = makeToken(KEY, "localhost:1234/devices/d1", LATER);
    const sig = decodeURIComponent(/sig=([^&]+)/.exec(good)![1]);
    expect(parseToken(good)).toBeDefined();
    for (const junk of [
      `${sig}AAAA`,
      `${sig}x`,
      `${sig}=`,
      ` ${sig}`,
      sig.replace(/=$/, ""),
      `${sig.slice(0, -2)}B=`,
    ]) {
      const token = good.replace(/sig=[^&]+/, `sig=${encodeURIComponent(junk)}`);
      // Node's decoder reads every one of these as the same 32 bytes; the hub must not.
      expect(parseToken(token), junk).toBeUndefined();
    }
  });
});

describe("Authorizer", () => {
  const device = { primaryKey: KEY, secondaryKey: OTHER, status: "enabled" as const };
  const auth = new Authorizer(
    DEV_POLICIES,
    (h) => h === "localhost:1234",
    (id) => (id === "d1" ? device : undefined),
    () => NOW,
  );
  const owner = DEV_POLICIES[0];
  const svc = (perm: "RegistryRead" | "ServiceConnect", token: string) => {
    try {
      return auth.service(token, perm);
    } catch (e) {
      return e instanceof HubError ? e.status : "threw";
    }
  };

  it("accepts a policy token with the permission and names the policy", () => {
    expect(svc("RegistryRead", makeToken(owner.primaryKey, "localhost:1234", LATER, "iothubowner"))).toBe(
      "iothubowner",
    );
    expect(svc("RegistryRead", makeToken(owner.secondaryKey, "localhost:1234", LATER, "iothubowner"))).toBe(
      "iothubowner",
    );
  });

  it("refuses expired, foreign-audience, under-privileged and device tokens with 401", () => {
    expect(
      svc("RegistryRead", makeToken(owner.primaryKey, "localhost:1234", NOW / 1000 - 1, "iothubowner")),
    ).toBe(401);
    expect(svc("RegistryRead", makeToken(owner.primaryKey, "elsewhere:1234", LATER, "iothubowner"))).toBe(
      401,
    );
    const service = DEV_POLICIES.find((p) => p.name === "service")!;
    expect(svc("RegistryRead", makeToken(service.primaryKey, "localhost:1234", LATER, "service"))).toBe(401);
    expect(svc("ServiceConnect", makeToken(KEY, "localhost:1234/devices/d1", LATER))).toBe(401);
  });

  it("lets a device in with its own key only, and says why not otherwise", () => {
    const login = (deviceId: string, password: string) => auth.device({ deviceId, password });
    expect(login("d1", makeToken(KEY, "localhost:1234/devices/d1", LATER))).toEqual({
      ok: true,
      method: "sas",
      expiresAt: LATER * 1000,
    });
    expect(login("d1", makeToken(OTHER, "localhost:1234/devices/d1", LATER)).ok).toBe(true);
    expect(login("d1", makeToken(KEY, "localhost:1234/devices/d2", LATER))).toMatchObject({
      ok: false,
      refusal: "notAuthorized",
    });
    expect(login("d2", makeToken(KEY, "localhost:1234/devices/d2", LATER))).toMatchObject({
      ok: false,
      refusal: "notAuthorized",
    });
    expect(login("d1", makeToken(KEY, "localhost:1234/devices/d1", NOW / 1000 - 1))).toMatchObject({
      ok: false,
      refusal: "badCredentials",
    });
    const wrong = Buffer.from("not-the-key-not-the-key-not-the!").toString("base64");
    expect(login("d1", makeToken(wrong, "localhost:1234/devices/d1", LATER))).toMatchObject({
      ok: false,
      refusal: "badCredentials",
    });
    expect(
      login("d1", makeToken(owner.primaryKey, "localhost:1234/devices/d1", LATER, "iothubowner")),
    ).toEqual({ ok: true, method: "sas", expiresAt: LATER * 1000 });
    const service = DEV_POLICIES.find((p) => p.name === "service")!;
    expect(login("d1", makeToken(service.primaryKey, "localhost:1234/devices/d1", LATER, "service")).ok).toBe(
      false,
    );
    device.status = "disabled" as "enabled";
    expect(login("d1", makeToken(KEY, "localhost:1234/devices/d1", LATER))).toMatchObject({
      ok: false,
      refusal: "notAuthorized",
    });
    device.status = "enabled";
  });
});
