import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeToken, sign } from "../../src/hub/auth/sas.js";
import { eventually, startTestHub } from "../hub/support.js";
import {
  deviceToken,
  inAnHour,
  mqttLogin,
  nowSeconds,
  policy,
  rest,
  serviceToken,
  subscribe,
  Tally,
} from "./support.js";

/**
 * Bad input, counted: SAS tokens that are tampered with, expired, "not yet valid", addressed to another hub
 * or device, signed for the wrong policy, on REST (401) and on MQTT (CONNACK refused).
 *
 * "Not yet valid": IoT Hub's SAS tokens carry no start time, only an expiry `se` (seconds since the epoch),
 * so there is no token that is valid later but not now. What is left to check is `se` itself: a correctly
 * signed token with an expiry far in the future is ACCEPTED, as IoT Hub accepts it (it documents no
 * maximum lifetime, and the SDKs let callers pick the lifetime), while an `se` that is not a whole number
 * of seconds (negative, fractional, exponent, words, absurdly long, missing) is REFUSED as malformed.
 */

type Hub = Awaited<ReturnType<typeof startTestHub>>;
const OTHER_KEY = Buffer.from("some-other-key-that-is-not-ours!").toString("base64");

/** Rewrites one field of a token, keeping the signature (a tampered token). */
function withField(token: string, field: string, value: string | undefined): string {
  const [prefix, rest] = [
    token.slice(0, "SharedAccessSignature ".length),
    token.slice("SharedAccessSignature ".length),
  ];
  const parts = rest.split("&").filter((p) => !p.startsWith(`${field}=`));
  if (value !== undefined) parts.push(`${field}=${value}`);
  return prefix + parts.join("&");
}

/** A token with `se` as given, correctly signed over that exact text (so only `se` itself is at fault). */
function signedWithExpiry(key: string, resource: string, se: string, keyName?: string): string {
  const sr = encodeURIComponent(resource);
  const sig = encodeURIComponent(
    // sign() takes a number; sign the raw text the same way the hub would if it accepted it.
    sign(key, sr, se as unknown as number),
  );
  return `SharedAccessSignature sr=${sr}&sig=${sig}&se=${se}${keyName ? `&skn=${keyName}` : ""}`;
}

function flipChar(sig: string): string {
  const decoded = decodeURIComponent(sig);
  const c = decoded[5] === "A" ? "B" : "A";
  return encodeURIComponent(decoded.slice(0, 5) + c + decoded.slice(6));
}

describe("bad input, counted: SAS tokens on REST and MQTT", () => {
  let hub: Hub;
  let keyA: string;
  let keyB: string;
  let victim: MqttClient;
  const victimMessages: string[] = [];
  let victimClosed = false;
  const tally = new Tally("bad SAS tokens (REST and MQTT)");

  beforeAll(async () => {
    hub = await startTestHub();
    const owner = serviceToken(hub);
    const make = async (id: string, status = "enabled") => {
      const res = await rest(hub, "PUT", `/devices/${id}`, {
        auth: owner,
        body: JSON.stringify({ deviceId: id, status }),
      });
      expect(res.status).toBe(200);
      return res.json<{ authentication: { symmetricKey: { primaryKey: string } } }>().authentication
        .symmetricKey.primaryKey;
    };
    keyA = await make("dev-a");
    keyB = await make("dev-b");
    await make("dev-off", "disabled");
    // dev-a is connected throughout: no refused login may disturb its session.
    const login = await mqttLogin(hub, "dev-a", deviceToken(hub, "dev-a", keyA));
    if (!login.ok) throw new Error(login.reason);
    victim = login.client;
    victim.on("message", (topic) => victimMessages.push(topic));
    victim.on("close", () => {
      victimClosed = true;
    });
    await subscribe(victim, ["$iothub/twin/res/#", "$iothub/twin/PATCH/properties/desired/#"]);
  });
  afterAll(async () => {
    console.log(tally.line());
    victim?.end(true);
    await hub?.cleanup();
  });

  describe("REST: GET /statistics/devices (needs RegistryRead)", () => {
    const owner = () => policy("iothubowner");
    const good = () => serviceToken(hub, "iothubowner");
    const cases: Array<{ name: string; token: () => string | undefined; status: number }> = [
      { name: "control: owner token", token: good, status: 200 },
      {
        name: "control: secondary key",
        token: () => serviceToken(hub, "iothubowner", { key: owner().secondaryKey }),
        status: 200,
      },
      {
        name: "se far in the future (year ~33000), correctly signed: accepted, IoT Hub has no start time or max lifetime",
        token: () => serviceToken(hub, "iothubowner", { expiry: 999_999_999_999 }),
        status: 200,
      },
      { name: "no Authorization header", token: () => undefined, status: 401 },
      { name: "empty Authorization header", token: () => "", status: 401 },
      { name: "Bearer token", token: () => "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", status: 401 },
      {
        name: "prefix in lower case",
        token: () => good().replace("SharedAccessSignature", "sharedaccesssignature"),
        status: 401,
      },
      {
        name: "tampered signature",
        token: () => withField(good(), "sig", flipChar(/sig=([^&]+)/.exec(good())![1])),
        status: 401,
      },
      {
        name: "tampered expiry (se moved later)",
        token: () => withField(good(), "se", String(inAnHour() + 7200)),
        status: 401,
      },
      {
        name: "tampered resource (sr)",
        token: () => withField(good(), "sr", encodeURIComponent(`${hub.hostName}x`)),
        status: 401,
      },
      {
        name: "tampered policy (skn changed to service)",
        token: () => withField(good(), "skn", "service"),
        status: 401,
      },
      { name: "signature removed", token: () => withField(good(), "sig", undefined), status: 401 },
      { name: "empty signature", token: () => withField(good(), "sig", ""), status: 401 },
      {
        name: "signature of zeros",
        token: () => withField(good(), "sig", encodeURIComponent(Buffer.alloc(32).toString("base64"))),
        status: 401,
      },
      {
        name: "duplicate sr field",
        token: () => `${good()}&sr=${encodeURIComponent(hub.hostName)}`,
        status: 401,
      },
      {
        name: "expired a minute ago",
        token: () => serviceToken(hub, "iothubowner", { expiry: nowSeconds() - 60 }),
        status: 401,
      },
      { name: "expired: se = 0", token: () => serviceToken(hub, "iothubowner", { expiry: 0 }), status: 401 },
      {
        name: "expiry now",
        token: () => serviceToken(hub, "iothubowner", { expiry: nowSeconds() }),
        status: 401,
      },
      {
        name: "malformed se: words",
        token: () => signedWithExpiry(owner().primaryKey, hub.hostName, "tomorrow", "iothubowner"),
        status: 401,
      },
      {
        name: "malformed se: negative",
        token: () => signedWithExpiry(owner().primaryKey, hub.hostName, "-5", "iothubowner"),
        status: 401,
      },
      {
        name: "malformed se: fractional",
        token: () => signedWithExpiry(owner().primaryKey, hub.hostName, `${inAnHour()}.5`, "iothubowner"),
        status: 401,
      },
      {
        name: "malformed se: exponent",
        token: () => signedWithExpiry(owner().primaryKey, hub.hostName, "1e12", "iothubowner"),
        status: 401,
      },
      {
        name: "malformed se: 20 digits",
        token: () => signedWithExpiry(owner().primaryKey, hub.hostName, "9".repeat(20), "iothubowner"),
        status: 401,
      },
      { name: "se missing", token: () => withField(good(), "se", undefined), status: 401 },
      {
        name: "wrong audience: another hub",
        token: () => serviceToken(hub, "iothubowner", { resource: "otherhub.azure-devices.net" }),
        status: 401,
      },
      {
        name: "wrong audience: another port",
        token: () =>
          serviceToken(hub, "iothubowner", { resource: `localhost:${hub.port === 1 ? 2 : hub.port - 1}` }),
        status: 401,
      },
      {
        name: "wrong audience: host without port",
        token: () => serviceToken(hub, "iothubowner", { resource: "localhost" }),
        status: 401,
      },
      {
        name: "wrong audience: a device path",
        token: () => serviceToken(hub, "iothubowner", { resource: `${hub.hostName}/devices/dev-a` }),
        status: 401,
      },
      {
        name: "unknown policy name",
        token: () => makeToken(owner().primaryKey, hub.hostName, inAnHour(), "nosuchpolicy"),
        status: 401,
      },
      {
        name: "policy name in the wrong case",
        token: () => makeToken(owner().primaryKey, hub.hostName, inAnHour(), "IotHubOwner"),
        status: 401,
      },
      {
        name: "owner key under the service policy name",
        token: () => makeToken(owner().primaryKey, hub.hostName, inAnHour(), "service"),
        status: 401,
      },
      {
        name: "foreign key under the owner policy name",
        token: () => serviceToken(hub, "iothubowner", { key: OTHER_KEY }),
        status: 401,
      },
      {
        name: "policy key without skn",
        token: () => makeToken(owner().primaryKey, hub.hostName, inAnHour()),
        status: 401,
      },
      { name: "device token of dev-a", token: () => deviceToken(hub, "dev-a", keyA), status: 401 },
      {
        name: "policy lacking the permission (service)",
        token: () => serviceToken(hub, "service"),
        status: 401,
      },
      { name: "token cut short", token: () => good().slice(0, Math.floor(good().length / 2)), status: 401 },
    ];

    it.each(cases)("$name -> $status", async (c) => {
      await tally.run(`REST ${c.name}`, async () => {
        const token = c.token();
        const res = await rest(hub, "GET", "/statistics/devices", { auth: token });
        expect(res.status, res.body).toBe(c.status);
        if (c.status === 401) {
          expect(res.json<{ Message: string }>().Message).toMatch(/^ErrorCode:IotHubUnauthorizedAccess;/);
          // The answer never echoes the token's signature.
          const sig = /sig=([^&]+)/.exec(token ?? "")?.[1];
          if (sig) expect(res.body).not.toContain(decodedOrRaw(sig));
        }
      });
    });
  });

  describe("MQTT: CONNECT as a device", () => {
    const tokenA = () => deviceToken(hub, "dev-a", keyA);
    const cases: Array<{
      name: string;
      clientId: string;
      username?: string;
      password: () => string | undefined;
      accept?: boolean;
    }> = [
      {
        name: "se far in the future, correctly signed: accepted (no start time in IoT Hub tokens)",
        clientId: "dev-b",
        password: () => deviceToken(hub, "dev-b", keyB, 999_999_999_999),
        accept: true,
      },
      {
        name: "control: the device policy (DeviceConnect) may connect a device",
        clientId: "dev-b",
        password: () =>
          makeToken(policy("device").primaryKey, `${hub.hostName}/devices/dev-b`, inAnHour(), "device"),
        accept: true,
      },
      { name: "no password", clientId: "dev-a", password: () => undefined },
      { name: "password that is not a token", clientId: "dev-a", password: () => "hunter2" },
      {
        name: "tampered signature",
        clientId: "dev-a",
        password: () => withField(tokenA(), "sig", flipChar(/sig=([^&]+)/.exec(tokenA())![1])),
      },
      {
        name: "tampered expiry",
        clientId: "dev-a",
        password: () => withField(tokenA(), "se", String(inAnHour() + 999)),
      },
      {
        name: "expired",
        clientId: "dev-a",
        password: () => deviceToken(hub, "dev-a", keyA, nowSeconds() - 30),
      },
      {
        name: "malformed se (words)",
        clientId: "dev-a",
        password: () => signedWithExpiry(keyA, `${hub.hostName}/devices/dev-a`, "soon"),
      },
      {
        name: "malformed se (negative)",
        clientId: "dev-a",
        password: () => signedWithExpiry(keyA, `${hub.hostName}/devices/dev-a`, "-1"),
      },
      {
        name: "wrong audience: another hub",
        clientId: "dev-a",
        password: () => makeToken(keyA, "otherhub.azure-devices.net/devices/dev-a", inAnHour()),
      },
      {
        name: "wrong audience: hub only, no device path",
        clientId: "dev-a",
        password: () => makeToken(keyA, hub.hostName, inAnHour()),
      },
      {
        name: "dev-b's token (its own key) used as dev-a",
        clientId: "dev-a",
        password: () => deviceToken(hub, "dev-b", keyB),
      },
      {
        name: "dev-b's key, dev-a's resource",
        clientId: "dev-a",
        password: () => deviceToken(hub, "dev-a", keyB),
      },
      {
        name: "dev-a's valid token with dev-b's client id",
        clientId: "dev-b",
        username: "dev-a",
        password: () => tokenA(),
      },
      {
        name: "user name naming another device",
        clientId: "dev-a",
        username: "dev-b",
        password: () => tokenA(),
      },
      { name: "foreign key", clientId: "dev-a", password: () => deviceToken(hub, "dev-a", OTHER_KEY) },
      {
        name: "service policy (no DeviceConnect)",
        clientId: "dev-a",
        password: () =>
          makeToken(policy("service").primaryKey, `${hub.hostName}/devices/dev-a`, inAnHour(), "service"),
      },
      {
        name: "device policy token scoped to dev-b, used as dev-a",
        clientId: "dev-a",
        password: () =>
          makeToken(policy("device").primaryKey, `${hub.hostName}/devices/dev-b`, inAnHour(), "device"),
      },
      {
        name: "unknown policy name",
        clientId: "dev-a",
        password: () =>
          makeToken(policy("device").primaryKey, `${hub.hostName}/devices/dev-a`, inAnHour(), "nosuch"),
      },
      { name: "unregistered device", clientId: "ghost", password: () => deviceToken(hub, "ghost", keyA) },
      {
        name: "disabled device with a (would-be) valid token",
        clientId: "dev-off",
        password: () => deviceToken(hub, "dev-off", keyA),
      },
    ];

    it.each(cases)("$name", async (c) => {
      await tally.run(`MQTT ${c.name}`, async () => {
        const username = `${hub.hostName}/${c.username ?? c.clientId}/?api-version=2021-04-12`;
        const outcome = await mqttLogin(hub, c.clientId, c.password() as string, { username });
        if (c.accept) {
          expect(outcome.ok, outcome.ok ? "" : outcome.reason).toBe(true);
          if (outcome.ok) outcome.client.end(true);
          return;
        }
        expect(outcome.ok).toBe(false);
        if (!outcome.ok) {
          // CONNACK 4 (bad user name or password) or 5 (not authorized), then the hub closes the connection.
          expect([4, 5], outcome.reason).toContain(outcome.returnCode);
        }
        // dev-a's own session is untouched by whatever was attempted in its name.
        expect(victimClosed).toBe(false);
        expect(victim.connected).toBe(true);
      });
    });

    it("dev-a stayed connected and can still use its twin after every refused login", async () => {
      victim.publish("$iothub/twin/GET/?$rid=after", "");
      await eventually(() => victimMessages.find((t) => t.startsWith("$iothub/twin/res/200/?$rid=after")));
      expect(victimClosed).toBe(false);
      const twin = await rest(hub, "GET", "/twins/dev-a", { auth: serviceToken(hub) });
      expect(twin.json().connectionState).toBe("Connected");
    });
  });

  it("tried at least 50 tokens and handled every one as expected", () => {
    expect(tally.tried).toBeGreaterThanOrEqual(50);
    expect(tally.handled).toBe(tally.tried);
  });
});

/** A token cut short may end inside a %XX escape: compare with the raw text then. */
function decodedOrRaw(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
