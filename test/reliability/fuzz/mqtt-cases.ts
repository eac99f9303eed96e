import { generate, type Packet } from "mqtt-packet";
import { makeToken } from "../../../src/hub/auth/sas.js";
import { randomJson, randomPayload } from "./json.js";
import { mutateBytes } from "./mutate.js";
import type { Rng } from "./rng.js";
import { mutateToken, tokenVerdict } from "./sas.js";

/**
 * MQTT fuzz cases: a CONNECT (valid, with a damaged SAS token, impersonating the victim, or as nobody),
 * then a random run of SUBSCRIBE / PUBLISH / PINGREQ / ... built with mqtt-packet, then possibly damaged
 * (bit flips, truncation, duplication, reordering, wrong remaining length), sent either all at once (so
 * everything arrives before the CONNACK) or in two writes around it.
 */

export interface FuzzDevice {
  id: string;
  key: string;
}

export interface MqttWorld {
  hostName: string;
  /** The device this case's connection may log in as (no other case uses it at the same time). */
  self: FuzzDevice;
  /** The well-known victim: its id is used, never its key. */
  victimId: string;
  /** Tag planted by pollution attempts, so a finding names the case. */
  tag: string;
}

export type MqttIdentity = "valid" | "sas" | "impersonate" | "nobody" | "no-connect";

export interface MqttCase {
  category: `mqtt-${MqttIdentity}`;
  /**
   * What the login must come to: "accept" (valid credentials, CONNECT untouched), "refuse" (bad credentials,
   * CONNECT untouched), "either" (the CONNECT itself was damaged, or sent in a protocol level IoT Hub lacks).
   */
  expectLogin: "accept" | "refuse" | "either";
  /** No packet was damaged, duplicated or reordered. */
  pristine: boolean;
  /** The session starts like the SDK's: its twin GET (rid sdk-1) and reported patch (sdk-2) need answers. */
  sdkStart: boolean;
  /** The client id the CONNECT names (for checking what comes back). */
  clientId: string;
  /** Bytes sent before waiting for the CONNACK, and after it (empty: everything went in the first write). */
  first: Buffer;
  second: Buffer;
  /** What the case does, for reports. */
  description: string[];
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

export function mqttCase(rng: Rng, world: MqttWorld): MqttCase {
  const identity = rng.weighted<MqttIdentity>([
    [45, "valid"],
    [20, "sas"],
    [15, "impersonate"],
    [10, "nobody"],
    [3, "no-connect"],
  ]);
  const description: string[] = [identity];
  const { self, hostName, victimId } = world;
  let clientId = self.id;
  let username = `${hostName}/${self.id}/?api-version=2021-04-12`;
  const validToken = () => makeToken(self.key, `${hostName}/devices/${self.id}`, nowSeconds() + 3600);
  let password: string | undefined = validToken();
  let verdict: "same" | "different" | "unclear" = "same";

  if (identity === "sas") {
    const m = mutateToken(rng, { key: self.key, resource: `${hostName}/devices/${self.id}` });
    password = m.token;
    verdict = tokenVerdict(m.token, { key: self.key, resource: `${hostName}/devices/${self.id}` });
    description.push(`password: ${m.how}`);
  } else if (identity === "impersonate") {
    clientId = victimId;
    username = `${hostName}/${victimId}/?api-version=2021-04-12`;
    verdict = "different";
    const how = rng.int(0, 3);
    if (how === 0) {
      password = makeToken(self.key, `${hostName}/devices/${victimId}`, nowSeconds() + 3600);
      description.push("victim's resource signed with our own key");
    } else if (how === 1) {
      password = validToken();
      description.push("our own valid token under the victim's client id");
    } else if (how === 2) {
      password = mutateToken(rng, { key: self.key, resource: `${hostName}/devices/${victimId}` }).token;
      description.push("damaged token for the victim");
    } else {
      username = `${hostName}/${self.id}/?api-version=2021-04-12`;
      password = validToken();
      description.push("victim's client id, our user name and token");
    }
  } else if (identity === "nobody") {
    verdict = "different";
    clientId = rng.pick([
      "",
      "ghost",
      "fuzz-unregistered",
      "$iothub",
      "#",
      "+",
      "a/b",
      "x".repeat(300),
      "\u00e9",
    ]);
    username = rng.pick([
      `${hostName}/${clientId}/?api-version=2021-04-12`,
      "",
      "x",
      `${hostName}/${victimId}`,
    ]);
    password = rng.chance(0.5) ? undefined : validToken();
    description.push(`client id ${JSON.stringify(clientId.slice(0, 20))}`);
  }

  let expectLogin: MqttCase["expectLogin"] =
    verdict === "same" ? "accept" : verdict === "different" ? "refuse" : "either";
  const connect: Packet = {
    cmd: "connect",
    protocolId: "MQTT",
    protocolVersion: rng.chance(0.95) ? 4 : rng.pick([3, 5] as const),
    clean: rng.chance(0.7),
    clientId,
    keepalive: rng.pick([0, 1, 60, 240, 65535]),
    username,
    password: password === undefined ? undefined : Buffer.from(password),
    ...(rng.chance(0.1)
      ? {
          will: {
            topic: rng.pick(topics(rng, world)),
            payload: Buffer.from("bye"),
            qos: 0 as const,
            retain: rng.chance(0.5),
          },
        }
      : {}),
  };
  if (connect.protocolVersion === 3) (connect as { protocolId: string }).protocolId = "MQIsdp";
  if (connect.protocolVersion !== 4) {
    if (expectLogin === "accept") expectLogin = "either";
    description.push(`protocol level ${connect.protocolVersion}`);
  }

  const packets: Buffer[] = [];
  const steps = rng.int(1, 10);
  for (let i = 0; i < steps; i++) {
    const { packet, what } = randomPacket(rng, world, clientId);
    packets.push(safeGenerate(packet));
    description.push(what);
  }

  // Most sessions start the way the SDK does (subscribe to twin responses and desired updates, then a twin
  // GET and a reported patch), so the twin paths are reached before any damage or protocol violation.
  const sdkStart = identity !== "nobody" && identity !== "no-connect" && rng.chance(0.6);
  if (sdkStart) {
    const patch = randomPayload(rng, world.tag);
    packets.unshift(
      generate({
        cmd: "subscribe",
        messageId: 1,
        subscriptions: [
          { topic: "$iothub/twin/res/#", qos: 0 },
          { topic: "$iothub/twin/PATCH/properties/desired/#", qos: 0 },
        ],
      }),
      generate({
        cmd: "publish",
        topic: "$iothub/twin/GET/?$rid=sdk-1",
        payload: Buffer.alloc(0),
        qos: 0,
        retain: false,
        dup: false,
      }),
      generate({
        cmd: "publish",
        topic: "$iothub/twin/PATCH/properties/reported/?$rid=sdk-2",
        payload: patch.body,
        qos: 0,
        retain: false,
        dup: false,
      }),
    );
    description.splice(
      1,
      0,
      `SDK-like start: SUBSCRIBE twin/res + desired, twin GET, reported patch (${patch.how})`,
    );
  }

  // A burst of large RETAIN publishes on unique topics of the device's own telemetry: IoT Hub accepts the
  // flag but keeps nothing ("Communicate with an IoT hub using the MQTT protocol": it does not support
  // retained messages), so the hub's memory must not grow with them (the memory check sees this). They
  // go first, so that a later forbidden packet does not end the connection before them.
  if (identity === "valid" && rng.chance(0.15)) {
    const n = rng.int(4, 8);
    for (let i = 0; i < n; i++) {
      packets.unshift(
        generate({
          cmd: "publish",
          topic: `devices/${self.id}/messages/events/retained-${world.tag}-${i}`,
          payload: Buffer.alloc(rng.int(100_000, 200_000), 0x72),
          qos: 0,
          retain: true,
          dup: false,
        }),
      );
    }
    description.push(`${n} large RETAIN publishes on unique telemetry topics`);
  }

  let all = [safeGenerate(connect), ...packets];
  if (identity === "no-connect") {
    all = all.slice(1);
    if (all.length === 0) all.push(generate({ cmd: "pingreq" }));
  }

  // Damage: one packet or the whole sequence.
  const damaged = rng.chance(0.45);
  if (damaged) {
    const kind = rng.int(0, 5);
    const target = rng.int(0, all.length - 1);
    const connectDamaged = target === 0 && identity !== "no-connect";
    if (kind === 0) {
      const m = mutateBytes(rng, all[target]);
      all[target] = m.value;
      if (connectDamaged) expectLogin = "either";
      description.push(`damaged packet ${target}: ${m.how}`);
    } else if (kind === 1) {
      all.splice(target, 0, all[target]);
      description.push(`packet ${target} duplicated`);
    } else if (kind === 2 && all.length > 1) {
      const other = rng.int(0, all.length - 1);
      [all[target], all[other]] = [all[other], all[target]];
      if ((other === 0 || target === 0) && identity !== "no-connect") expectLogin = "either";
      description.push(`packets ${target} and ${other} swapped`);
    } else if (kind === 3) {
      all[target] = wrongLength(rng, all[target]);
      if (connectDamaged) expectLogin = "either";
      description.push(`packet ${target} has a wrong remaining length`);
    } else if (kind === 4) {
      all[target] = all[target].subarray(0, rng.int(1, Math.max(1, all[target].length - 1)));
      if (connectDamaged) expectLogin = "either";
      description.push(`packet ${target} truncated`);
    } else {
      all.push(rng.bytes(rng.int(1, 64)));
      description.push("random bytes at the end");
    }
  }

  const split = rng.chance(0.4) && all.length > 1 ? 1 : all.length;
  if (split === all.length) description.push("all sent before the CONNACK");
  return {
    category: `mqtt-${identity}`,
    expectLogin: identity === "no-connect" ? "refuse" : expectLogin,
    pristine: !damaged,
    sdkStart,
    clientId,
    first: Buffer.concat(all.slice(0, split)),
    second: Buffer.concat(all.slice(split)),
    description,
  };
}

/** Topics a device might (or should never) use: its own, other devices', `$iothub/...` shapes, wildcards. */
function topics(rng: Rng, world: MqttWorld): string[] {
  const rid = rng.pick(["1", "", "a b", "%E0", "x".repeat(200), "1&$rid=2", "\u00e9"]);
  const { self, victimId } = world;
  return [
    `$iothub/twin/GET/?$rid=${rid}`,
    `$iothub/twin/PATCH/properties/reported/?$rid=${rid}`,
    "$iothub/twin/GET/",
    "$iothub/twin/GET",
    `$iothub/twin/res/200/?$rid=${rid}`,
    "$iothub/twin/PATCH/properties/desired/?$version=1",
    `$iothub/methods/res/200/?$rid=${rid}`,
    "$iothub/methods/POST/reboot/?$rid=1",
    `devices/${self.id}/messages/events/`,
    `devices/${self.id}/messages/events/a=b&$.ct=application%2Fjson`,
    `devices/${victimId}/messages/events/`,
    `devices/${victimId}/messages/devicebound/`,
    `devices/${self.id}/messages/devicebound/x`,
    "devices/+/messages/events/",
    "#",
    "$iothub/#",
    "$SYS/broker",
    "",
    "a\u0000b",
    `${rng.text(rng.int(1, 30))}/${rng.text(3)}`,
  ];
}

function filters(rng: Rng, world: MqttWorld): string[] {
  return [
    "$iothub/twin/res/#",
    "$iothub/twin/PATCH/properties/desired/#",
    "$iothub/methods/POST/#",
    `devices/${world.self.id}/messages/devicebound/#`,
    `devices/${world.victimId}/messages/devicebound/#`,
    "devices/+/messages/devicebound/#",
    "devices/#",
    "#",
    "+",
    "$iothub/#",
    "$iothub/+/res/#",
    "$iothub/twin/res/+/#",
    "$SYS/#",
    "$share/g/#",
    "a/#/b",
    "",
    rng.text(rng.int(1, 20), "abc/+#$"),
  ];
}

function randomPacket(rng: Rng, world: MqttWorld, clientId: string): { packet: Packet; what: string } {
  const messageId = rng.pick([1, 2, 65535, rng.int(1, 65535)]);
  const kind = rng.weighted<string>([
    [8, "publish"],
    [4, "subscribe"],
    [2, "pingreq"],
    [1, "unsubscribe"],
    [1, "ack"],
    [1, "connect"],
    [1, "disconnect"],
  ]);
  switch (kind) {
    case "publish": {
      const topic = rng.pick(topics(rng, world));
      const qos = rng.weighted<0 | 1 | 2>([
        [5, 0],
        [3, 1],
        [2, 2],
      ]);
      const retain = rng.chance(0.2);
      const bigRetained = retain && rng.chance(0.3);
      const payload = bigRetained
        ? { body: Buffer.alloc(rng.int(100_000, 250_000), 0x61), how: "big" }
        : topic.includes("reported")
          ? randomPayload(rng, world.tag)
          : { body: Buffer.from(rng.chance(0.5) ? randomJson(rng, 2) : ""), how: "small" };
      return {
        packet: {
          cmd: "publish",
          topic,
          payload: payload.body,
          qos,
          retain,
          dup: rng.chance(0.1),
          messageId,
        },
        what: `PUBLISH qos${qos}${retain ? " retain" : ""} ${topic.slice(0, 60)} (${payload.how}, ${payload.body.length} B)`,
      };
    }
    case "subscribe": {
      const n = rng.int(1, 3);
      const subs = Array.from({ length: n }, () => ({
        topic: rng.pick(filters(rng, world)),
        qos: rng.pick([0, 1, 2] as const),
      }));
      return {
        packet: { cmd: "subscribe", messageId, subscriptions: subs },
        what: `SUBSCRIBE ${subs.map((s) => s.topic).join(" ")}`,
      };
    }
    case "unsubscribe":
      return {
        packet: { cmd: "unsubscribe", messageId, unsubscriptions: [rng.pick(filters(rng, world))] },
        what: "UNSUBSCRIBE",
      };
    case "ack": {
      const cmd = rng.pick(["puback", "pubrec", "pubrel", "pubcomp"] as const);
      return { packet: { cmd, messageId }, what: cmd.toUpperCase() };
    }
    case "connect":
      return {
        packet: {
          cmd: "connect",
          protocolId: "MQTT",
          protocolVersion: 4,
          clean: true,
          clientId,
          keepalive: 60,
        },
        what: "second CONNECT",
      };
    case "disconnect":
      return { packet: { cmd: "disconnect" }, what: "DISCONNECT" };
    default:
      return { packet: { cmd: "pingreq" }, what: "PINGREQ" };
  }
}

/** mqtt-packet refuses some shapes (e.g. an empty topic): send raw bytes of a PINGREQ instead. */
function safeGenerate(packet: Packet): Buffer {
  try {
    return generate(packet);
  } catch {
    return generate({ cmd: "pingreq" });
  }
}

/** Rewrites the remaining-length field to a wrong value (shorter, longer, or over the varint's 4 bytes). */
function wrongLength(rng: Rng, packet: Buffer): Buffer {
  let i = 1;
  while (i < packet.length && i < 5 && packet[i] & 0x80) i++;
  const body = packet.subarray(i + 1);
  const lengths = [0, 1, body.length + 1, body.length + 1000, Math.max(0, body.length - 1), 268_435_455];
  const n = rng.pick(lengths);
  const varint: number[] = [];
  let x = n;
  do {
    let byte = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) byte |= 0x80;
    varint.push(byte);
  } while (x > 0);
  if (rng.chance(0.2))
    return Buffer.concat([packet.subarray(0, 1), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]), body]);
  return Buffer.concat([packet.subarray(0, 1), Buffer.from(varint), body]);
}
