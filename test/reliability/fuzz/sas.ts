import { makeToken, sign } from "../../../src/hub/auth/sas.js";
import { mutateText } from "./mutate.js";
import type { Rng } from "./rng.js";

/**
 * Damaged SAS tokens for both protocols (MQTT password, REST Authorization header). Every token made here
 * starts from a valid one and breaks one thing, so a token the hub accepts anyway is a finding, unless the
 * damage left the token meaning the same thing (`tokenVerdict`).
 */

const PREFIX = "SharedAccessSignature ";
const nowSeconds = () => Math.floor(Date.now() / 1000);

function fields(token: string): Array<[string, string]> {
  return token
    .slice(PREFIX.length)
    .split("&")
    .map((p) => {
      const eq = p.indexOf("=");
      return [p.slice(0, eq), p.slice(eq + 1)] as [string, string];
    });
}

function build(parts: Array<[string, string]>, prefix = PREFIX): string {
  return prefix + parts.map(([k, v]) => `${k}=${v}`).join("&");
}

function setField(token: string, name: string, value: string | undefined): string {
  const parts = fields(token).filter(([k]) => k !== name);
  if (value !== undefined) parts.push([name, value]);
  return build(parts);
}

/** A token with `se` as given, correctly signed over that exact text. */
function signedWith(key: string, resource: string, se: string, keyName?: string): string {
  const sr = encodeURIComponent(resource);
  const sig = encodeURIComponent(sign(key, sr, se as unknown as number));
  return `${PREFIX}sr=${sr}&sig=${sig}&se=${se}${keyName ? `&skn=${keyName}` : ""}`;
}

export interface TokenSource {
  /** The signing key and the token's resource and policy, as the valid token has them. */
  key: string;
  resource: string;
  keyName?: string;
}

/** Returns a damaged token and what was done to it. */
export function mutateToken(rng: Rng, src: TokenSource): { token: string; how: string } {
  const valid = makeToken(src.key, src.resource, nowSeconds() + 3600, src.keyName);
  const kind = rng.int(0, 17);
  switch (kind) {
    case 0:
      return {
        token: setField(valid, "skn", rng.pick(["%E0", "%", "%zz", "%C0%80", "%ED%A0%80"])),
        how: "skn with a broken %-escape",
      };
    case 1:
      return {
        token: setField(valid, "sr", rng.pick(["%E0", "%", `${encodeURIComponent(src.resource)}%E0`])),
        how: "sr with a broken %-escape",
      };
    case 2:
      return {
        token: setField(valid, "sig", rng.pick(["%E0", "%", "%%%", "AAAA%E0"])),
        how: "sig with a broken %-escape",
      };
    case 3:
      return {
        token: setField(
          valid,
          "sig",
          encodeURIComponent(rng.bytes(rng.pick([0, 1, 31, 32, 33, 64])).toString("base64")),
        ),
        how: "sig of random bytes",
      };
    case 4:
      return {
        token: setField(valid, "sig", rng.text(rng.int(1, 80), "!@#$^*()[]{}<>~`|\\\"' \t")),
        how: "sig that is not base64",
      };
    case 5: {
      const se = rng.pick([0, 1, nowSeconds() - 1, nowSeconds() - 86_400]);
      return {
        token: makeToken(src.key, src.resource, se, src.keyName),
        how: `expired (se=${se}), correctly signed`,
      };
    }
    case 6: {
      const se = rng.pick([
        "soon",
        "-1",
        "1e12",
        "12.5",
        "0x10",
        " 123",
        "99999999999999999999",
        "",
        "NaN",
        "Infinity",
      ]);
      return {
        token: signedWith(src.key, src.resource, se, src.keyName),
        how: `non-numeric se ${JSON.stringify(se)}, signed`,
      };
    }
    case 7:
      return {
        token: setField(
          valid,
          rng.pick(["sr", "sig", "skn", "se"]),
          "x".repeat(rng.pick([1024, 65_536, 200_000])),
        ),
        how: "one huge field",
      };
    case 8:
      return { token: setField(valid, rng.pick(["sr", "sig", "se"]), undefined), how: "a field removed" };
    case 9:
      return {
        token: `${valid}&${rng.pick(["sr", "sig", "se", "skn"])}=${rng.text(8)}`,
        how: "a field duplicated",
      };
    case 10:
      return {
        token: `${valid}&${rng.text(4)}=${rng.text(4)}${rng.chance(0.5) ? "&=&" : ""}`,
        how: "extra fields",
      };
    case 11:
      return {
        token: valid.replace(
          PREFIX,
          rng.pick([
            "",
            "sharedaccesssignature ",
            "SharedAccessSignature  ",
            "Bearer ",
            "SharedAccessSignature\t",
          ]),
        ),
        how: "prefix damaged",
      };
    case 12:
      return {
        token: rng.pick([
          "",
          " ",
          "SharedAccessSignature",
          PREFIX,
          `${PREFIX}&&&`,
          `${PREFIX}===`,
          `${PREFIX}sr&sig&se`,
        ]),
        how: "degenerate token",
      };
    case 13: {
      const other = Buffer.from(rng.text(32)).toString("base64");
      return {
        token: makeToken(other, src.resource, nowSeconds() + 3600, src.keyName),
        how: "signed with a foreign key",
      };
    }
    case 14:
      return {
        token: makeToken(
          src.key,
          `${src.resource}${rng.pick(["x", "/", "/devices/fuzz-victim", "%2F..", "\u00e9"])}`,
          nowSeconds() + 3600,
          src.keyName,
        ),
        how: "resource changed, correctly signed",
      };
    case 15:
      return {
        token: makeToken(
          src.key,
          src.resource,
          nowSeconds() + 3600,
          rng.pick(["", "nosuch", "IOTHUBOWNER", "device", "service", "%E0"]),
        ),
        how: "skn changed, signed with the same key",
      };
    default: {
      let token = valid;
      const steps: string[] = [];
      for (let i = rng.int(1, 3); i > 0; i--) {
        const m = mutateText(rng, token);
        token = m.value;
        steps.push(m.how);
      }
      return { token, how: `text mutations: ${steps.join("; ")}` };
    }
  }
}

export type TokenVerdict = "same" | "different" | "unclear";

/**
 * What a damaged token means next to the valid one, judged by the test's own reading of the SAS format
 * (never the hub's parser): "same" when sr, se, sig and skn are exactly the valid token's, "different" when
 * one of them changed meaning (another resource, expiry, signature or policy, a duplicate, a broken escape,
 * a damaged prefix), "unclear" when only the spelling changed (extra unknown fields, an escape written in
 * other case), where IoT Hub's documentation does not say what happens.
 */
export function tokenVerdict(token: string, src: TokenSource): TokenVerdict {
  if (!token.startsWith(PREFIX)) return "different";
  const valid = new Map(fields(makeToken(src.key, src.resource, 0, src.keyName)));
  const got = new Map<string, string>();
  let extra = false;
  for (const part of token.slice(PREFIX.length).split("&")) {
    const eq = part.indexOf("=");
    if (eq < 0) {
      extra = true;
      continue;
    }
    const name = part.slice(0, eq);
    if (got.has(name) && valid.has(name)) return "different";
    if (!valid.has(name)) extra = true;
    got.set(name, part.slice(eq + 1));
  }
  const decode = (v: string | undefined) => {
    if (v === undefined) return undefined;
    try {
      return decodeURIComponent(v);
    } catch {
      return null;
    }
  };
  // se is compared with the expiry the signature covers: re-sign over the token's own se.
  const se = got.get("se");
  if (se === undefined || !/^\d{1,12}$/.test(se) || Number(se) <= nowSeconds()) return "different";
  const expected = new Map(fields(makeToken(src.key, src.resource, Number(se), src.keyName)));
  if (got.get("sr") !== expected.get("sr")) return "different";
  let spelling = extra;
  for (const name of ["sig", "skn"]) {
    const a = got.get(name);
    const b = expected.get(name);
    if (a === b) continue;
    const da = decode(a);
    if (da === null || da !== decode(b)) return "different";
    spelling = true;
  }
  return spelling ? "unclear" : "same";
}
