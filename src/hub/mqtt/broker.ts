import type { Duplex } from "node:stream";
import { Aedes, type AuthenticateError, type Client } from "aedes";
import { type Authorizer, loginRefused } from "../auth/authorizer.js";
import { HubError, twinErrorBody } from "../errors.js";
import { CONNACK, TOPICS } from "../protocol.js";
import type { DeviceRegistry } from "../registry.js";
import { connectRefusal, twinRequestRefusal } from "../throttle/hooks.js";
import type { Throttle } from "../throttle/index.js";
import { renderDeviceTwin } from "../twin/twin.js";
import { guardPacketSize, MAX_MQTT_PACKET_BYTES } from "./frame-guard.js";
import { classifyPublish, isDownstream, maySubscribe } from "./topics.js";

export interface MqttFrontend {
  handle(stream: Duplex): void;
  /** Sends a desired-property patch to the device if it is connected and subscribed. */
  pushDesired(deviceId: string, patch: Record<string, unknown>, version: number): void;
  /** Drops the device's connection (disabled, deleted or re-keyed). */
  disconnect(deviceId: string): void;
  readonly connectedCount: number;
  close(): Promise<void>;
}

/**
 * The device side: aedes does MQTT 3.1.1; the hub plugs in through its hooks. Twin requests are consumed
 * here and answered only to the client that asked (the response topics are the same for every device, so
 * they must never go through the broker's fan-out).
 */
export async function createMqttFrontend(opts: {
  registry: DeviceRegistry;
  authorizer: Authorizer;
  log: (line: string) => void;
  onTelemetry?: (deviceId: string, topic: string, payload: Buffer) => void;
  throttle?: Throttle;
}): Promise<MqttFrontend> {
  const { registry, authorizer, log } = opts;
  const clients = new Map<string, Client>();

  const broker = await Aedes.createBroker({
    // IoT Hub's username is "<host>/<deviceId>/?api-version=..."; the client id is the device id.
    authenticate(client, username, password, done) {
      const deviceId = client.id;
      const overQuota = connectRefusal(opts.throttle);
      if (overQuota) {
        log(`MQTT ${deviceId} connect refused: ${overQuota.message}`);
        return done(overQuota, false);
      }
      const userDevice = username?.split("/")[1];
      const result =
        userDevice !== deviceId
          ? loginRefused("username does not name this device", CONNACK.badUsernameOrPassword)
          : authorizer.device(deviceId, password?.toString("utf8"));
      if (result.ok) return done(null, true);
      log(`MQTT ${deviceId} connect refused: ${result.reason}`);
      const err = new Error(result.reason) as AuthenticateError;
      err.returnCode = result.returnCode;
      done(err, false);
    },

    authorizeSubscribe(client, subscription, done) {
      if (maySubscribe(client.id, subscription.topic)) {
        if (subscription.topic === TOPICS.twinDesiredFilter) registry.setDesiredSubscription(client.id, true);
        return done(null, subscription);
      }
      log(`MQTT ${client.id} subscribe refused: ${subscription.topic}`);
      // A null subscription answers SUBACK 0x80 (failure) for this filter (MQTT 3.1.1, 3.9.3).
      done(null, null);
    },

    authorizePublish(client, packet, done) {
      if (!client) return done(null);
      const request = classifyPublish(client.id, packet.topic);
      switch (request.kind) {
        case "twinGet":
        case "reportedPatch": {
          const throttled = twinRequestRefusal(opts.throttle, request.kind);
          if (throttled) refuse(client, request.kind, request.rid, 429, throttled);
          else answerTwinRequest(client, request.kind, request.rid, packet.payload);
          return done(null);
        }
        case "telemetry":
          registry.touch(client.id);
          opts.onTelemetry?.(client.id, packet.topic, packet.payload as Buffer);
          return done(null);
        case "methodResponse":
          return done(null);
        default:
          // Failing authorizePublish closes the connection, as IoT Hub does for a publish outside the device's topics.
          log(`MQTT ${client.id} publish refused: ${packet.topic}`);
          return done(new Error("topic not allowed for this device"));
      }
    },

    // Defence in depth: the broker forwards nothing to a client but the hub's own downstream messages.
    authorizeForward(client, packet) {
      return isDownstream(client.id, packet.topic) ? packet : null;
    },
  });

  // A clean session starts with no subscriptions; a persistent one (CleanSession=0, what the device SDKs
  // use) keeps its desired-property subscription from earlier connections, even across hub restarts. This
  // runs when aedes registers the client, before its CONNACK: aedes handles a SUBSCRIBE that follows the
  // CONNACK at once, possibly before "clientReady", which would be too late to reset anything.
  broker.on("client", (client) => {
    if (client.clean) registry.setDesiredSubscription(client.id, false);
  });
  broker.on("clientReady", (client) => {
    clients.set(client.id, client);
    registry.setConnected(client.id, true);
    log(`MQTT ${client.id} connected`);
  });
  // Explicit UNSUBSCRIBE, and the end of a clean session (aedes unsubscribes everything then).
  broker.on("unsubscribe", (filters, client) => {
    if (clients.get(client.id) === client && filters.includes(TOPICS.twinDesiredFilter))
      registry.setDesiredSubscription(client.id, false);
  });
  broker.on("clientDisconnect", (client) => {
    if (clients.get(client.id) !== client) return;
    clients.delete(client.id);
    registry.setConnected(client.id, false);
    log(`MQTT ${client.id} disconnected`);
  });

  /**
   * Twin requests are answered on the response topic, errors included (400 bad patch, 404 gone, 500). Every
   * answer waits for the registry's group commit, so a device hears of nothing that is not stored yet, and
   * answers leave in the order the requests came.
   */
  function answerTwinRequest(
    client: Client,
    kind: "twinGet" | "reportedPatch",
    rid: string,
    payload: Buffer | string,
  ) {
    try {
      if (kind === "twinGet") {
        const body = JSON.stringify(renderDeviceTwin(registry.require(client.id)));
        registry.afterCommit((error) =>
          error ? failed(client, kind, rid) : reply(client, 200, rid, undefined, body),
        );
        return;
      }
      const version = registry.updateReported(client.id, JSON.parse(payload.toString("utf8")));
      registry.afterCommit((error) => {
        if (error) return failed(client, kind, rid);
        log(`MQTT ${client.id} reported patch -> $version ${version}`);
        reply(client, 204, rid, version, "");
      });
    } catch (error) {
      const known = error instanceof HubError;
      const status = known ? error.status : error instanceof SyntaxError ? 400 : 500;
      const message = known ? error.message : status === 400 ? "payload is not JSON" : "hub error";
      refuse(client, kind, rid, status, message);
    }
  }

  function failed(client: Client, kind: "twinGet" | "reportedPatch", rid: string) {
    refuse(client, kind, rid, 500, "hub error");
  }

  function refuse(
    client: Client,
    kind: "twinGet" | "reportedPatch",
    rid: string,
    status: number,
    message: string,
  ) {
    registry.afterCommit(() => {
      log(
        `MQTT ${client.id} ${kind === "twinGet" ? "twin GET" : "reported patch"} refused (${status}): ${message}`,
      );
      reply(client, status, rid, undefined, twinErrorBody(status, message));
    });
  }

  function reply(client: Client, status: number, rid: string, version: number | undefined, body: string) {
    client.publish(
      {
        cmd: "publish",
        topic: TOPICS.twinResponse(status, rid, version),
        payload: Buffer.from(body),
        qos: 0,
        retain: false,
        dup: false,
      },
      () => {},
    );
  }

  return {
    handle: (stream) => {
      broker.handle(stream);
      guardPacketSize(stream, (bytes) =>
        log(
          `MQTT connection dropped: a packet announced ${bytes} bytes, over the ${MAX_MQTT_PACKET_BYTES} limit`,
        ),
      );
    },
    pushDesired(deviceId, patch, version) {
      const client = clients.get(deviceId);
      if (!client || !registry.find(deviceId)?.desiredSubscribed) return;
      const payload = Buffer.from(JSON.stringify({ ...patch, $version: version }));
      client.publish(
        { cmd: "publish", topic: TOPICS.desiredUpdate(version), payload, qos: 0, retain: false, dup: false },
        () => {},
      );
    },
    disconnect(deviceId) {
      clients.get(deviceId)?.close();
    },
    get connectedCount() {
      return clients.size;
    },
    close: () => new Promise<void>((resolve) => broker.close(() => resolve())),
  };
}
