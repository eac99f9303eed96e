import type { Client } from "aedes";
import { HubError, twinErrorBody } from "../errors.js";
import type { LogLine } from "../log.js";
import { TOPICS } from "../protocol.js";
import type { DeviceRegistry } from "../registry/registry.js";
import { twinRequestRefusal } from "../throttle/hooks.js";
import type { Throttle } from "../throttle/index.js";
import { renderDeviceTwin } from "../twin/twin.js";
import type { createDownstream } from "./downstream.js";
import { MAX_OUTSTANDING_TWIN_REQUESTS } from "./limits.js";

type Downstream = ReturnType<typeof createDownstream>;

export type TwinRequestKind = "twinGet" | "reportedPatch";

/**
 * Twin requests of a device ("Communicate with an IoT hub using the MQTT protocol", "Retrieving a device
 * twin's properties" and "Update device twin's reported properties"):
 * - answered on `$iothub/twin/res/{status}/?$rid={rid}`, to this client only (the response topics are the same
 *   for every device, so they never go through a broker fan-out), and only if the session subscribed to
 *   `$iothub/twin/res/#` first, as the doc requires ("First, a device subscribes to `$iothub/twin/res/#`, to
 *   receive the operation's responses"). A GET nobody will hear of is not even read; a reported patch is
 *   still applied, only not acknowledged.
 * - every answer waits for the registry's group commit, so a device hears of nothing that is not stored yet,
 *   and answers leave in the order the requests came.
 * - per-device limits (limits.ts): at most MAX_OUTSTANDING_TWIN_REQUESTS in flight, 429 beyond; a client
 *   whose socket holds more than MAX_UNSENT_BYTES unsent is disconnected instead of buffered.
 */
export function createTwinRequests(opts: {
  registry: DeviceRegistry;
  downstream: Downstream;
  /** A line about one device (rate-limited per device by the caller). */
  log: (deviceId: string, line: LogLine) => void;
  /** IoT Hub's twin read/update throttles (--throttle), when enforced. */
  throttle?: Throttle;
}) {
  const { registry, downstream, log } = opts;
  /** Requests received and not yet answered-and-flushed, per connection. */
  const inFlight = new WeakMap<Client, number>();

  const subscribed = (client: Client) => registry.find(client.id)?.twinResponsesSubscribed === true;

  function handle(client: Client, kind: TwinRequestKind, rid: string, payload: Buffer | string): void {
    const what = kind === "twinGet" ? "twin GET" : "reported patch";
    if (kind === "twinGet" && !subscribed(client)) {
      log(
        client.id,
        `MQTT ${client.id} ${what} not answered: not subscribed to ${TOPICS.twinResponseFilter}`,
      );
      return;
    }
    const pending = inFlight.get(client) ?? 0;
    if (pending >= MAX_OUTSTANDING_TWIN_REQUESTS) {
      log(client.id, `MQTT ${client.id} ${what} throttled (429): ${pending} requests still unanswered`);
      // The 429 is itself in flight until flushed, so a client that never reads cannot make it grow.
      track(client, (done) => send(client, 429, rid, undefined, twinErrorBody(429, "throttled"), done));
      return;
    }
    // Over the tier's twin read/update throttle: "429 Too many requests (throttled), as per IoT Hub throttling".
    const throttled = twinRequestRefusal(opts.throttle, kind);
    if (throttled) {
      track(client, (done) => registry.afterCommit(() => refuse(client, what, rid, 429, throttled, done)));
      return;
    }
    track(client, (done) => {
      try {
        if (kind === "twinGet") {
          const body = JSON.stringify(renderDeviceTwin(registry.require(client.id)));
          registry.afterCommit((error) =>
            error
              ? refuse(client, what, rid, 500, "hub error", done)
              : send(client, 200, rid, undefined, body, done),
          );
          return;
        }
        const version = registry.twins.updateReported(client.id, JSON.parse(payload.toString("utf8")));
        registry.afterCommit((error) => {
          if (error) return refuse(client, what, rid, 500, "hub error", done);
          log(client.id, () => `MQTT ${client.id} reported patch -> $version ${version}`);
          send(client, 204, rid, version, "", done);
        });
      } catch (error) {
        const known = error instanceof HubError;
        const status = known ? error.status : error instanceof SyntaxError ? 400 : 500;
        const message = known ? error.message : status === 400 ? "payload is not JSON" : "hub error";
        // Through afterCommit too: an error answer must not overtake the answers of earlier requests.
        registry.afterCommit(() => refuse(client, what, rid, status, message, done));
      }
    });
  }

  /** Counts one request in flight until `work` calls its `done`. */
  function track(client: Client, work: (done: () => void) => void): void {
    inFlight.set(client, (inFlight.get(client) ?? 0) + 1);
    let finished = false;
    work(() => {
      if (finished) return;
      finished = true;
      inFlight.set(client, (inFlight.get(client) ?? 1) - 1);
    });
  }

  function refuse(
    client: Client,
    what: string,
    rid: string,
    status: number,
    message: string,
    done: () => void,
  ) {
    log(client.id, `MQTT ${client.id} ${what} refused (${status}): ${message}`);
    send(client, status, rid, undefined, twinErrorBody(status, message), done);
  }

  function send(
    client: Client,
    status: number,
    rid: string,
    version: number | undefined,
    body: string,
    done: () => void,
  ): void {
    if (client.closed || !subscribed(client)) {
      done();
      return;
    }
    downstream.send(client, TOPICS.twinResponse(status, rid, version), body, done);
  }

  return { handle };
}
