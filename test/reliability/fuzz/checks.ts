import { type Packet, parser } from "mqtt-packet";
import { isDownstream } from "../../../src/hub/mqtt/topics.js";
import type { HttpCase } from "./http-cases.js";
import type { MqttCase } from "./mqtt-cases.js";
import type { Exchange } from "./wire.js";

/**
 * The per-connection invariants. Each returns the violations it saw as short stable names (the "kind" a
 * finding is filed under) with a detail line.
 */
export interface Violation {
  kind: string;
  detail: string;
}

/** Splits what an MQTT server sent into packets; a parse error is itself a finding. */
export function parseServerStream(bytes: Buffer): { packets: Packet[]; error?: string } {
  const p = parser({ protocolVersion: 4 });
  const packets: Packet[] = [];
  let error: string | undefined;
  p.on("packet", (packet: Packet) => packets.push(packet));
  p.on("error", (e: Error) => {
    error ??= e.message;
  });
  p.parse(bytes);
  return { packets, error };
}

/** Whether an MQTT answer holds the replies to the SDK-like start (or a refusal, which ends it). */
export function sdkStartSettled(received: Buffer): boolean {
  const { packets } = parseServerStream(received);
  const first = packets[0] as { cmd: string; returnCode?: number } | undefined;
  if (first && first.cmd === "connack" && first.returnCode !== 0) return true;
  const rids = packets.filter((p) => p.cmd === "publish").map((p) => (p as { topic: string }).topic);
  return rids.some((t) => t.includes("$rid=sdk-1")) && rids.some((t) => t.includes("$rid=sdk-2"));
}

export function checkMqtt(c: MqttCase, x: Exchange, marker: Buffer): Violation[] {
  const out: Violation[] = [];
  if (x.received.includes(marker))
    out.push({ kind: "leak: the victim's twin reached a fuzz MQTT connection", detail: "marker found" });
  // A first byte other than CONNECT makes the hub treat the connection as HTTP.
  if (c.first[0] !== 0x10) {
    if (x.received.length > 0 && !/^HTTP\/1\.1 4\d\d /.test(x.received.subarray(0, 13).toString("latin1")))
      out.push({
        kind: "non-CONNECT first packet not refused as bad HTTP",
        detail: x.received.subarray(0, 40).toString("latin1"),
      });
    return out;
  }
  const { packets, error } = parseServerStream(x.received);
  if (error) out.push({ kind: "hub sent bytes that are not MQTT", detail: error });
  // No answer at all is allowed: a server may drop a client for a protocol violation later in the same
  // write (a second CONNECT, a forbidden topic) before it has sent the CONNACK (MQTT 3.1.1 section 4.8).
  if (packets.length === 0) return out;
  const [first, ...rest] = packets;
  if (first.cmd !== "connack") {
    out.push({ kind: "hub sent a packet before the CONNACK", detail: first.cmd });
    return out;
  }
  const rc = (first as { returnCode?: number }).returnCode ?? -1;
  if (rc !== 0 && rest.length > 0)
    out.push({
      kind: "refused login was answered further packets",
      detail: rest.map(describe).join(", ").slice(0, 300),
    });
  if (rc === 0 && c.expectLogin === "refuse")
    out.push({
      kind: "login with bad credentials accepted",
      detail: `client id ${JSON.stringify(c.clientId.slice(0, 40))}`,
    });
  if (rc !== 0 && c.expectLogin === "accept" && c.pristine)
    out.push({ kind: "valid login refused", detail: `CONNACK ${rc}` });
  // A login that was accepted, on a connection the hub kept open: the SDK-like twin GET and reported patch
  // sent right after CONNECT (before the CONNACK, MQTT 3.1.1 section 3.1.4 allows it) are answered.
  if (rc === 0 && c.sdkStart && c.pristine && !x.closedByHub) {
    const answered = (rid: string) =>
      rest.some(
        (p) =>
          p.cmd === "publish" && p.topic.startsWith("$iothub/twin/res/") && p.topic.includes(`$rid=${rid}`),
      );
    const get = rest.find((p) => p.cmd === "publish" && p.topic.includes("$rid=sdk-1"));
    if (!get || !(get as { topic: string }).topic.startsWith("$iothub/twin/res/200/"))
      out.push({
        kind: "twin GET sent with the CONNECT not answered 200",
        detail: get ? (get as { topic: string }).topic : "no answer",
      });
    if (!answered("sdk-2"))
      out.push({ kind: "reported patch sent with the CONNECT not answered", detail: "no answer" });
  }
  for (const p of rest) {
    if (p.cmd !== "publish") continue;
    if (!isDownstream(c.clientId, p.topic))
      out.push({
        kind: "hub forwarded a publish that is not the device's own downstream traffic",
        detail: p.topic.slice(0, 120),
      });
    if (p.retain) out.push({ kind: "hub delivered a retained message", detail: p.topic.slice(0, 120) });
  }
  return out;
}

export function checkHttp(c: HttpCase, x: Exchange, marker: Buffer): Violation[] {
  const out: Violation[] = [];
  if (!c.mayShowVictim && x.received.includes(marker))
    out.push({ kind: "leak: the victim's twin reached a fuzz HTTP request", detail: "marker found" });
  const head = x.received.subarray(0, 200).toString("latin1");
  const status = /^HTTP\/1\.1 (\d{3})/.exec(head)?.[1];
  if (x.received.length > 0 && !status)
    out.push({
      kind: "hub answered HTTP with something that is not an HTTP/1.1 response",
      detail: head.slice(0, 60),
    });
  if (!status) return out;
  const code = Number(status);
  if (code >= 500)
    out.push({ kind: `HTTP ${code} (an unhandled error) for a bad request`, detail: bodyOf(x.received) });
  if (c.unauthorized && code >= 200 && code < 300)
    out.push({ kind: "request without a valid token answered 2xx", detail: head.split("\r\n")[0] });
  return out;
}

function bodyOf(received: Buffer): string {
  const text = received.toString("utf8");
  const at = text.indexOf("\r\n\r\n");
  return (at < 0 ? text : text.slice(at + 4)).slice(0, 200);
}

function describe(p: Packet): string {
  return p.cmd === "publish" ? `publish ${p.topic}` : p.cmd;
}
