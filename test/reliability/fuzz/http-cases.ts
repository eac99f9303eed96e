import { makeToken } from "../../../src/hub/auth/sas.js";
import { jsonString, randomJson, randomPayload } from "./json.js";
import { mutateBytes, mutateText } from "./mutate.js";
import type { Rng } from "./rng.js";
import { mutateToken, tokenVerdict } from "./sas.js";

/**
 * HTTP fuzz cases, written as raw bytes on a TLS connection: random methods and paths under /devices,
 * /twins and /devices/query, headers (Authorization with a valid, damaged or missing SAS token, content
 * types, lengths right and wrong, chunked bodies), bodies of mutated JSON, prototype keys, deep nesting
 * and huge arrays, and sometimes the whole request damaged at byte level.
 */

export interface HttpWorld {
  hostName: string;
  /** The iothubowner policy's key. */
  ownerKey: string;
  victimId: string;
  /** Device ids a case with a valid token may create, change and delete. */
  scratchIds: readonly string[];
  tag: string;
}

export type HttpAuth = "valid" | "sas" | "none";

export interface HttpCase {
  category: `http-${HttpAuth}` | "http-raw";
  /** A valid token (or a damaged one that still means the same): the request may be answered 2xx. */
  authorized: boolean;
  /** The token is plainly not valid: the request must not be answered 2xx. */
  unauthorized: boolean;
  /** Whether the request names the victim (only ever with a token that is not valid). */
  aboutVictim: boolean;
  /** A valid query may list every twin, the victim's included: its answer is allowed to show the victim. */
  mayShowVictim: boolean;
  bytes: Buffer;
  description: string[];
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

export function httpCase(rng: Rng, world: HttpWorld): HttpCase {
  const auth = rng.weighted<HttpAuth>([
    [45, "valid"],
    [40, "sas"],
    [15, "none"],
  ]);
  const description: string[] = [auth];
  const source = { key: world.ownerKey, resource: world.hostName, keyName: "iothubowner" };
  let token: string | undefined;
  let authorized = false;
  let unauthorized = auth === "none";
  if (auth === "valid") {
    token = makeToken(source.key, source.resource, nowSeconds() + 3600, source.keyName);
    authorized = true;
  } else if (auth === "sas") {
    const m = mutateToken(rng, source);
    token = m.token;
    const verdict = tokenVerdict(m.token, source);
    authorized = verdict === "same";
    unauthorized = verdict === "different";
    description.push(`token: ${m.how}`);
  }

  // Requests with a token that works never touch the victim; the others aim at it on purpose.
  const aboutVictim = unauthorized && rng.chance(0.6);
  const id = aboutVictim ? world.victimId : rng.pick(world.scratchIds);
  const route = rng.weighted<string>([
    [5, "twin"],
    [3, "device"],
    [3, "query"],
    [1, "list"],
    [1, "stats"],
    [1, "bulk"],
    [1, "random"],
  ]);
  let method: string;
  let path: string;
  let body: Buffer | undefined;
  switch (route) {
    case "twin": {
      method = rng.pick(["GET", "PATCH", "PUT", "PATCH", "DELETE", "POST"]);
      path = `/twins/${encodeURIComponent(id)}`;
      if (method !== "GET") {
        const section = rng.pick(["tags", "desired"]);
        const p = randomPayload(rng, world.tag, (inner) =>
          section === "tags" ? `{"tags":${inner}}` : `{"properties":{"desired":${inner}}}`,
        );
        body = p.body;
        description.push(`${section} body: ${p.how}`);
      }
      break;
    }
    case "device": {
      method = rng.pick(["GET", "PUT", "DELETE", "PATCH"]);
      path = `/devices/${encodeURIComponent(id)}`;
      if (method === "PUT") {
        const shape = rng.int(0, 2);
        const text =
          shape === 0
            ? `{"deviceId":${jsonString(id)},"status":${rng.pick(['"enabled"', '"disabled"', '"x"', "1", "null"])}}`
            : shape === 1
              ? `{"deviceId":${jsonString(id)},"authentication":{"symmetricKey":${randomJson(rng, 2)}},"__proto__":{"status":"disabled"}}`
              : randomPayload(rng, world.tag).body.toString("utf8");
        body = Buffer.from(text);
        description.push(`identity body shape ${shape}`);
      }
      break;
    }
    case "query": {
      method = rng.chance(0.9) ? "POST" : "GET";
      path = "/devices/query";
      const queries = [
        "SELECT * FROM devices",
        `SELECT * FROM devices WHERE deviceId = '${id}'`,
        `SELECT * FROM devices WHERE properties.reported.fuzzPolluted = '${world.tag}'`,
        "SELECT * FROM devices WHERE tags.__proto__.x = 1",
        "SELECT COUNT() AS n FROM devices GROUP BY tags.constructor",
        `SELECT ${"(".repeat(rng.pick([10, 1000]))}1 FROM devices`,
        "SELECT * FROM devices.modules",
        `SELECT * FROM devices WHERE ${Array.from({ length: 300 }, (_, i) => `tags.k${i} = ${i}`).join(" OR ")}`,
        // Expensive queries (queries without a budget once froze the hub): nested and wide string building,
        // an aggregate over every twin, a projection of whole twins many times over.
        `SELECT CONCAT(${Array(800).fill("deviceId").join(",")}) AS s FROM devices`,
        `SELECT * FROM devices WHERE ${"CONCAT(".repeat(60)}deviceId${", deviceId)".repeat(60)} = 'x'`,
        "SELECT tags.location.plant, COUNT() AS n, MAX(LENGTH(CONCAT(deviceId, deviceId))) AS m FROM devices GROUP BY tags.location.plant",
        `SELECT ${Array.from({ length: 100 }, (_, i) => `properties AS p${i}`).join(", ")} FROM devices`,
        rng.text(rng.int(0, 80), "SELECT *FROMWHERE'\"().[]=<>!,0123 "),
      ];
      const q = rng.pick(queries);
      const p = rng.chance(0.5)
        ? { body: Buffer.from(`{"query":${jsonString(q)}}`), how: `query ${q.slice(0, 50)}` }
        : randomPayload(rng, world.tag, (inner) => `{"query":${inner}}`);
      body = p.body;
      description.push(p.how);
      break;
    }
    case "list":
      method = "GET";
      path = `/devices`;
      break;
    case "stats":
      method = "GET";
      path = "/statistics/devices";
      break;
    case "bulk": {
      method = "POST";
      path = "/devices";
      const p = randomPayload(
        rng,
        world.tag,
        (inner) => `[{"id":${jsonString(rng.pick(world.scratchIds))},"importMode":"create","x":${inner}}]`,
      );
      body = p.body;
      description.push(`bulk body: ${p.how}`);
      break;
    }
    default:
      method = rng.pick([
        "GET",
        "POST",
        "OPTIONS",
        "HEAD",
        "TRACE",
        "CONNECT",
        "get",
        "PRI",
        rng.text(5, "ABCXYZ"),
      ]);
      path = rng.pick([
        "/",
        "*",
        "/devices/",
        `/devices/${encodeURIComponent(id)}/modules`,
        "/devices/%00",
        "/devices/%E0",
        "/devices/..%2f..%2fetc%2fpasswd",
        `/twins/${"a".repeat(rng.pick([200, 600, 5000]))}`,
        "/twins/",
        "//twins//x",
        `/jobs/v2/${rng.text(8)}`,
        "http://evil/twins/x",
      ]);
  }

  const query = rng.weighted<string>([
    [8, "?api-version=2021-04-12"],
    [1, ""],
    [1, "?api-version=1999-01-01"],
    [1, `?api-version=2021-04-12&top=${rng.pick(["5", "0", "-1", "1e3", "abc", "99999"])}`],
    [1, `?${rng.text(rng.int(0, 30), "a=&%?E0")}`],
  ]);
  const headers: Array<[string, string]> = [["Host", world.hostName]];
  if (token !== undefined) headers.push(["Authorization", token]);
  if (rng.chance(0.2))
    headers.push(["If-Match", rng.pick(['"*"', "*", '"AAAAAAAAAAE="', "", '"', 'W/"x"', rng.text(10)])]);
  if (route === "query" && rng.chance(0.4))
    headers.push(["x-ms-max-item-count", rng.pick(["1", "0", "-5", "1e9", "abc", "9".repeat(30)])]);
  if (route === "query" && rng.chance(0.3))
    headers.push([
      "x-ms-continuation",
      rng.pick(["", "%E0", Buffer.from(randomJson(rng, 2)).toString("base64"), rng.text(40)]),
    ]);
  if (rng.chance(0.05)) headers.push(["X-Big", "b".repeat(rng.pick([8_000, 70_000]))]);
  if (rng.chance(0.05) && token !== undefined) headers.push(["Authorization", token]);

  let chunked = false;
  if (body !== undefined) {
    headers.push([
      "Content-Type",
      rng.weighted<string>([
        [8, "application/json; charset=utf-8"],
        [1, "application/json"],
        [1, "text/plain"],
        [
          1,
          rng.pick([
            "application/json; charset=latin1",
            "application/x-www-form-urlencoded",
            "",
            "application/jsonx",
          ]),
        ],
      ]),
    ]);
    const lengthKind = rng.weighted<string>([
      [7, "right"],
      [1, "short"],
      [1, "long"],
      [1, "chunked"],
      [1, "absurd"],
    ]);
    if (lengthKind === "right") headers.push(["Content-Length", String(body.length)]);
    else if (lengthKind === "short")
      headers.push(["Content-Length", String(Math.max(0, body.length - rng.int(1, 10)))]);
    else if (lengthKind === "long") headers.push(["Content-Length", String(body.length + rng.int(1, 10))]);
    else if (lengthKind === "absurd")
      headers.push(["Content-Length", rng.pick(["-1", "abc", "99999999999999999999", "1, 2"])]);
    else {
      chunked = true;
      headers.push(["Transfer-Encoding", "chunked"]);
    }
    if (lengthKind !== "right") description.push(`content length ${lengthKind}`);
  }
  headers.push(["Connection", "close"]);

  let headerText = headers.map(([k, v]) => `${k}: ${v}`).join("\r\n");
  if (rng.chance(0.1)) {
    const m = mutateText(rng, headerText);
    headerText = m.value;
    description.push(`headers: ${m.how}`);
  }
  const head = Buffer.from(`${method} ${path}${query} HTTP/1.1\r\n${headerText}\r\n\r\n`, "utf8");
  let payload = body ?? Buffer.alloc(0);
  if (chunked && body !== undefined)
    payload = Buffer.concat([
      Buffer.from(`${body.length.toString(16)}\r\n`),
      body,
      Buffer.from("\r\n0\r\n\r\n"),
    ]);
  let bytes: Buffer = Buffer.concat([head, payload]);
  description.unshift(`${method} ${path.slice(0, 60)}${query.slice(0, 40)}`);

  let category: HttpCase["category"] = `http-${auth}`;
  if (rng.chance(0.1)) {
    const m = mutateBytes(rng, bytes);
    bytes = m.value;
    category = "http-raw";
    description.push(`request bytes: ${m.how}`);
  }
  return {
    category,
    authorized,
    unauthorized,
    aboutVictim,
    mayShowVictim: authorized && route === "query",
    bytes,
    description,
  };
}
