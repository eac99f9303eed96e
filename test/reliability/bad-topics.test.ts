import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, startTestHub } from "../hub/support.js";
import { closed, deviceToken, mqttLogin, rest, serviceToken, subscribe, Tally } from "./support.js";

/**
 * Bad input, counted: a device publishing or subscribing outside its own topics. Subscriptions outside a
 * device's topics are refused (SUBACK 0x80) and the connection stays; a publish outside them closes the
 * connection (as IoT Hub does); a will message aimed at another device is never delivered. Throughout, a
 * second device ("the victim"), subscribed to everything a device may subscribe to, receives nothing it did
 * not ask for, stays connected, and its twin does not change.
 */

type Hub = Awaited<ReturnType<typeof startTestHub>>;

// `#` is not here: IoT Hub accepts it (Microsoft's samples subscribe to it); the test below checks that it
// brings dev-evil nothing of the victim's.
const SUBSCRIBE_CASES = [
  "+",
  "+/#",
  "$iothub/#",
  "$iothub/+/#",
  "$SYS/#",
  "devices/#",
  "devices/+/messages/devicebound/#",
  "devices/dev-victim/messages/devicebound/#",
  "devices/dev-victim/#",
  "devices/dev-victim/messages/events/#",
  "devices/+/messages/events/#",
  "devices/dev-evil/messages/events/#",
  "$iothub/twin/PATCH/properties/reported/#",
  "$iothub/twin/GET/#",
  "$iothub/twin/res/200/#",
  "$iothub/twin/PATCH/#",
  "$iothub/methods/#",
  "$iothub/methods/res/#",
];

const PUBLISH_CASES: Array<{ topic: string; qos?: 0 | 1 | 2; retain?: boolean }> = [
  { topic: "devices/dev-victim/messages/events/" },
  { topic: "devices/dev-victim/messages/events/a=1", qos: 1 },
  { topic: "devices/dev-victim/messages/devicebound/%24.to=victim" },
  { topic: "devices/dev-evil/messages/devicebound/x" },
  { topic: "$iothub/twin/PATCH/properties/desired/?$version=999" },
  { topic: "$iothub/twin/res/200/?$rid=1" },
  { topic: "$iothub/twin/res/204/?$rid=1&$version=999" },
  { topic: "$iothub/methods/POST/reboot/?$rid=1" },
  { topic: "$iothub/twin/GET/" },
  { topic: "$iothub/twin/PATCH/properties/reported/" },
  { topic: "$iothub/twin/PATCH/properties/reported/?$rid=" },
  { topic: "$SYS/broker/clients" },
  { topic: "random/topic" },
  { topic: "devices/dev-victim/messages/events/", qos: 2 },
  { topic: "devices/dev-victim/messages/events/", retain: true },
  { topic: "devices/dev-evil/messages/eventsX" },
];

const WILL_CASES = [
  "devices/dev-victim/messages/devicebound/will",
  "$iothub/twin/PATCH/properties/desired/?$version=777",
  "$iothub/twin/res/200/?$rid=victim-1",
  "$iothub/methods/POST/reboot/?$rid=1",
];

describe("bad input, counted: devices outside their own topics", () => {
  let hub: Hub;
  let owner: string;
  let evilKey: string;
  let victim: MqttClient;
  let victimClosed = false;
  const victimGot: string[] = [];
  const tally = new Tally("topics outside the device's own (MQTT)");
  let victimTwin: { version: number; etag: string };

  const evil = async (extra = {}) => {
    const login = await mqttLogin(hub, "dev-evil", deviceToken(hub, "dev-evil", evilKey), extra);
    if (!login.ok) throw new Error(`dev-evil could not connect: ${login.reason}`);
    return login.client;
  };

  const victimUnaffected = async () => {
    expect(victimClosed).toBe(false);
    expect(victim.connected).toBe(true);
    expect(victimGot).toEqual([]);
    const twin = (await rest(hub, "GET", "/twins/dev-victim", { auth: owner })).json<typeof victimTwin>();
    expect({ version: twin.version, etag: twin.etag }).toEqual(victimTwin);
  };

  beforeAll(async () => {
    hub = await startTestHub();
    owner = serviceToken(hub);
    const make = async (id: string) => {
      const res = await rest(hub, "PUT", `/devices/${id}`, {
        auth: owner,
        body: JSON.stringify({ deviceId: id }),
      });
      return res.json<{ authentication: { symmetricKey: { primaryKey: string } } }>().authentication
        .symmetricKey.primaryKey;
    };
    evilKey = await make("dev-evil");
    const victimKey = await make("dev-victim");
    const login = await mqttLogin(hub, "dev-victim", deviceToken(hub, "dev-victim", victimKey));
    if (!login.ok) throw new Error(login.reason);
    victim = login.client;
    victim.on("message", (topic) => victimGot.push(topic));
    victim.on("close", () => {
      victimClosed = true;
    });
    const granted = await subscribe(
      victim,
      [
        "$iothub/twin/res/#",
        "$iothub/twin/PATCH/properties/desired/#",
        "$iothub/methods/POST/#",
        "devices/dev-victim/messages/devicebound/#",
      ],
      1,
    );
    expect(granted).toHaveLength(4);
    expect(granted).not.toContain(128);
    const t = (await rest(hub, "GET", "/twins/dev-victim", { auth: owner })).json<typeof victimTwin>();
    victimTwin = { version: t.version, etag: t.etag };
  });
  afterAll(async () => {
    console.log(tally.line());
    victim?.end(true);
    await hub?.cleanup();
  });

  describe("subscriptions outside the device's topics are refused; the connection stays", () => {
    let client: MqttClient;
    beforeAll(async () => {
      client = await evil();
    });
    afterAll(() => {
      client?.end(true);
    });

    it.each(SUBSCRIBE_CASES)("subscribe %s -> SUBACK 0x80", async (filter) => {
      await tally.run(`subscribe ${filter}`, async () => {
        expect(await subscribe(client, filter, 1)).toEqual([128]);
        expect(client.connected).toBe(true);
        await victimUnaffected();
      });
    });

    it("the refused subscriptions deliver nothing: traffic for the victim never reaches dev-evil", async () => {
      await tally.run("no delivery after refused subscriptions", async () => {
        const got: string[] = [];
        client.on("message", (topic) => got.push(topic));
        // The victim asks for its twin, the service changes the victim's desired properties.
        victim.publish("$iothub/twin/GET/?$rid=victim-get", "");
        const res = await rest(hub, "PATCH", "/twins/dev-victim", {
          auth: owner,
          body: JSON.stringify({ properties: { desired: { secret: "for the victim only" } } }),
          headers: { "if-match": "*" },
        });
        expect(res.status).toBe(200);
        // The victim receives both; then the bookkeeping is reset for the following cases.
        await eventually(() => (victimGot.length >= 2 ? true : undefined));
        expect(victimGot.some((t) => t.startsWith("$iothub/twin/res/200/?$rid=victim-get"))).toBe(true);
        expect(victimGot.some((t) => t.startsWith("$iothub/twin/PATCH/properties/desired/"))).toBe(true);
        expect(got).toEqual([]);
        victimGot.length = 0;
        const t = (await rest(hub, "GET", "/twins/dev-victim", { auth: owner })).json<typeof victimTwin>();
        victimTwin = { version: t.version, etag: t.etag };
      });
    });

    it("a device's own, allowed filters do not let it see another device's responses or desired updates", async () => {
      await tally.run("allowed filters stay per device", async () => {
        const spy = await evil();
        const got: string[] = [];
        spy.on("message", (topic) => got.push(topic));
        expect(
          await subscribe(spy, [
            "$iothub/twin/res/#",
            "$iothub/twin/PATCH/properties/desired/#",
            "#",
            "devices/dev-evil/messages/devicebound/#",
          ]),
        ).toEqual([0, 0, 0, 0]);
        victim.publish("$iothub/twin/GET/?$rid=victim-get-2", "");
        await rest(hub, "PATCH", "/twins/dev-victim", {
          auth: owner,
          body: JSON.stringify({ properties: { desired: { secret2: "victim only" } } }),
          headers: { "if-match": "*" },
        });
        await eventually(() => (victimGot.length >= 2 ? true : undefined));
        // dev-evil's own request is answered to dev-evil alone: proof its subscription works.
        spy.publish("$iothub/twin/GET/?$rid=evil-get", "");
        await eventually(() => (got.length > 0 ? true : undefined));
        expect(got).toHaveLength(1);
        expect(got[0]).toMatch(/^\$iothub\/twin\/res\/200\/\?\$rid=evil-get/);
        expect(victimGot.some((t) => t.includes("evil-get"))).toBe(false);
        spy.end(true);
        victimGot.length = 0;
        const t = (await rest(hub, "GET", "/twins/dev-victim", { auth: owner })).json<typeof victimTwin>();
        victimTwin = { version: t.version, etag: t.etag };
      });
    });
  });

  it.each(PUBLISH_CASES)("publish to $topic (qos $qos, retain $retain) closes the connection", async (c) => {
    await tally.run(`publish ${c.topic} qos=${c.qos ?? 0}${c.retain ? " retained" : ""}`, async () => {
      const client = await evil();
      const gone = closed(client);
      client.publish(c.topic, JSON.stringify({ evil: true }), { qos: c.qos ?? 0, retain: c.retain ?? false });
      await gone;
      await victimUnaffected();
    });
  });

  it.each(WILL_CASES)("a will message to %s is not delivered when dev-evil drops", async (topic) => {
    await tally.run(`will ${topic}`, async () => {
      const client = await evil({
        will: { topic, payload: JSON.stringify({ evil: true }), qos: 0, retain: false },
      });
      const gone = closed(client);
      // An abrupt end (no DISCONNECT) is what makes the broker publish a will.
      (client as unknown as { stream: { destroy(): void } }).stream.destroy();
      await gone;
      // Once the hub has seen dev-evil go (it publishes a will before it marks the device disconnected),
      // the victim asks for its twin as a marker: anything the will produced would arrive before the answer.
      await eventually(async () => {
        const t = await rest(hub, "GET", "/twins/dev-evil", { auth: owner });
        return t.json().connectionState === "Disconnected" ? true : undefined;
      });
      victim.publish("$iothub/twin/GET/?$rid=marker", "");
      await eventually(() => (victimGot.length > 0 ? true : undefined));
      expect(victimGot).toHaveLength(1);
      expect(victimGot[0]).toMatch(/^\$iothub\/twin\/res\/200\/\?\$rid=marker/);
      victimGot.length = 0;
      await victimUnaffected();
    });
  });

  it("tried at least 40 cases and handled every one as expected; the victim never noticed", async () => {
    await victimUnaffected();
    const twin = (await rest(hub, "GET", "/twins/dev-victim", { auth: owner })).json();
    expect(twin.connectionState).toBe("Connected");
    expect(tally.tried).toBeGreaterThanOrEqual(39);
    expect(tally.handled).toBe(tally.tried);
  });
});
