import type { Duplex } from "node:stream";
import { Aedes, type AuthenticateError, type Client } from "aedes";
import type { Authorizer } from "../auth/authorizer.js";
import { type DeviceVerdict, type LoginMethod, type RefusalKind, refused } from "../auth/verdict.js";
import type { ChannelEvents, MessageChannel } from "../c2d/channel.js";
import { perKeyLimit } from "../log.js";
import type { MethodChannel, MethodEvents } from "../methods/channel.js";
import { createMqttMethods } from "../methods/mqtt.js";
import { CONNACK, TOPICS } from "../protocol.js";
import type { DeviceRegistry } from "../registry/registry.js";
import { connectRefusal } from "../throttle/hooks.js";
import type { Throttle } from "../throttle/index.js";
import { presentedChain } from "../tls/peer.js";
import { holdUntilConnack } from "./connect-gate.js";
import { createDevicebound } from "./devicebound.js";
import { createDownstream } from "./downstream.js";
import { guardPacketSize, MAX_MQTT_PACKET_BYTES } from "./frame-guard.js";
import { NO_FAN_OUT, withoutRouting } from "./routing.js";
import { createSubscribeAcks } from "./subscribe-acks.js";
import { type TelemetryMessage, telemetryMessage } from "./telemetry.js";
import { createTokenExpiry } from "./token-expiry.js";
import { classifyPublish, deliveryOf, isDownstream } from "./topics.js";
import { createTwinRequests } from "./twin-requests.js";

/**
 * MQTT 3.1.1 CONNACK codes for a refused login (spec 3.2.2.3): 4 "bad user name or password" for credentials that
 * do not hold (a malformed, expired or wrongly signed SAS token), 5 "not authorized" for a login that is not
 * allowed (unknown or disabled device, token for another device, a certificate that does not authenticate the
 * device: IoT Hub answers 5 there, Azure/azure-iot-sdk-c#510), 3 "server unavailable" when the hub cannot decide.
 */
const CONNACK_FOR: Record<RefusalKind, AuthenticateError["returnCode"]> = {
  badCredentials: CONNACK.badUsernameOrPassword,
  notAuthorized: CONNACK.notAuthorized,
  unavailable: CONNACK.serverUnavailable,
};

export interface MqttFrontend {
  /**
   * Serves one MQTT connection. `tls`: the TLS connection it runs over when `stream` is not that connection itself
   * (MQTT over WebSockets), so an X.509 device's client certificate can be read.
   */
  handle(stream: Duplex, tls?: Duplex): void;
  /** Sends a desired-property patch to the device if it is connected and subscribed. */
  pushDesired(deviceId: string, patch: Record<string, unknown>, version: number): void;
  /** Drops the device's connection (disabled, deleted or re-keyed). */
  disconnect(deviceId: string): void;
  /** Direct method requests to devices (methods/mqtt.ts). */
  readonly methods: MethodChannel;
  /** Cloud-to-device messages to connected, subscribed devices (devicebound.ts). */
  readonly devicebound: MessageChannel;
  readonly connectedCount: number;
  close(): Promise<void>;
}

/**
 * The device side: aedes does MQTT 3.1.1; the hub plugs in through its hooks, and this file only wires them.
 * The rules live in their own modules: connect-gate (nothing after CONNECT before CONNACK), token-expiry,
 * topics (what a device may publish and subscribe), subscribe-acks (SUBACK codes), twin-requests (answers,
 * per-device limits), routing (no broker fan-out, nothing retained), telemetry.
 *
 * Every hook body is guarded: an unexpected error is logged and refused (CONNACK 3, SUBACK 0x80 or a closed
 * connection), and the hub keeps serving everyone else.
 */
export async function createMqttFrontend(opts: {
  registry: DeviceRegistry;
  authorizer: Authorizer;
  log: (line: string) => void;
  /** Each device-to-cloud message; a returned promise delays the message's PUBACK until it settles. */
  onTelemetry?: (message: TelemetryMessage) => Promise<void> | undefined;
  throttle?: Throttle;
  /** Where devices' method answers, subscriptions and disconnections are reported (methods/invoker.ts). */
  methods?: MethodEvents;
  /** Told when a device can take cloud-to-device messages (the hub's queue, c2d/queue.ts). */
  cloudToDevice?: ChannelEvents;
}): Promise<MqttFrontend> {
  const { registry, authorizer, log } = opts;
  const deviceLog = perKeyLimit(log);
  const clients = new Map<string, Client>();
  /** When the credential each connection logged in with ends, until the connection is registered. */
  const loginExpiry = new WeakMap<Client, { at: number; method: LoginMethod }>();
  /** How each live connection logged in (for the reason logged when its credential ends). */
  const loginMethod = new WeakMap<Client, LoginMethod>();
  const expiry = createTokenExpiry((client) => {
    const what = loginMethod.get(client) === "sas" ? "its SAS token" : "its X.509 certificate";
    deviceLog(client.id, `MQTT ${client.id} disconnected: ${what} expired`);
    client.close();
  });
  /** The TLS connection under each stream that is not one itself (see `handle`). */
  const tlsOf = new WeakMap<Duplex, Duplex>();
  const acks = createSubscribeAcks();
  const downstream = createDownstream(deviceLog);
  const twin = createTwinRequests({ registry, downstream, log: deviceLog, throttle: opts.throttle });
  const methods = createMqttMethods({ clients, registry, downstream, events: opts.methods, log: deviceLog });
  /** Connections being closed because a new one logged in with the same device ID (MQTT 3.1.1 §3.1.4). */
  const replaced = new WeakSet<Client>();

  const failed = (where: string, client: Client | null, error: unknown) => {
    const line = `MQTT ${client?.id ?? "(no client id)"} ${where} failed: ${(error as Error)?.stack ?? error}`;
    if (client?.id) deviceLog(client.id, line);
    else log(line);
  };

  const broker = await Aedes.createBroker({
    mq: NO_FAN_OUT,
    // Packets that come in the same read as the CONNECT wait in aedes' queue until the CONNACK is sent (see
    // connect-gate.ts); aedes' default (42) closed a client that pipelines more. One read is at most 64 KB, so
    // the queue stays bounded either way.
    queueLimit: 1000,

    preConnect(client, packet, done) {
      try {
        holdUntilConnack(client, packet, done);
      } catch (error) {
        failed("preConnect", client, error);
        done(error as Error, false);
      }
    },

    // IoT Hub's username is "<host>/<deviceId>/?api-version=..."; the client id is the device id.
    authenticate(client, username, password, done) {
      const overQuota = connectRefusal(opts.throttle);
      if (overQuota) {
        deviceLog(client.id, `MQTT ${client.id} connect refused: ${overQuota.message}`);
        return done(overQuota, false);
      }
      let result: DeviceVerdict;
      try {
        const deviceId = client.id;
        const userDevice = username?.split("/")[1];
        result =
          userDevice !== deviceId
            ? refused("username does not name this device", "badCredentials")
            : authorizer.device({
                deviceId,
                password: password?.toString("utf8"),
                // The TLS handshake's client certificate, for X.509 devices (read only when there is no password).
                peerCertificate: password?.length
                  ? undefined
                  : presentedChain(tlsOf.get(client.conn as Duplex) ?? (client.conn as Duplex)),
              });
      } catch (error) {
        failed("login", client, error);
        result = refused("hub error", "unavailable");
      }
      if (result.ok) {
        loginExpiry.set(client, { at: result.expiresAt, method: result.method });
        const previous = clients.get(client.id);
        if (previous && previous !== client) replaced.add(previous);
        return done(null, true);
      }
      deviceLog(client.id, `MQTT ${client.id} connect refused: ${result.reason}`);
      const err = new Error(result.reason) as AuthenticateError;
      err.returnCode = CONNACK_FOR[result.refusal];
      done(err, false);
    },

    authorizeSubscribe(client, subscription, done) {
      try {
        const delivery = deliveryOf(client.id, subscription.topic);
        if (delivery === "desiredUpdates")
          registry.sessions.setSessionSubscription(client.id, "desiredSubscribed", true);
        if (delivery === "twinResponses")
          registry.sessions.setSessionSubscription(client.id, "twinResponsesSubscribed", true);
        if (delivery === "cloudToDevice") {
          registry.sessions.setCloudToDeviceSubscription(client.id, true);
          devicebound.subscribed(client);
        }
        if (delivery) return done(null, subscription);
        deviceLog(client.id, `MQTT ${client.id} subscribe refused: ${subscription.topic}`);
      } catch (error) {
        failed("subscribe", client, error);
      }
      // A null subscription answers SUBACK 0x80 (failure) for this filter (MQTT 3.1.1, 3.9.3).
      done(null, null);
    },

    authorizePublish(client, packet, done) {
      if (!client) return done(null);
      try {
        // "IoT Hub doesn't support QoS 2 messages. If a device app publishes a message with QoS 2, IoT Hub
        // closes the network connection." ("Communicate with an IoT hub using the MQTT protocol")
        if (packet.qos === 2) {
          deviceLog(client.id, `MQTT ${client.id} disconnected: QoS 2 publish to ${packet.topic}`);
          return done(new Error("QoS 2 is not supported"));
        }
        // "IoT Hub doesn't persist Retain messages": the flag becomes the mqtt-retain property of telemetry
        // (telemetry.ts) and a twin request with it is an ordinary request; nothing reaches a retained store.
        const retain = packet.retain;
        packet.retain = false;
        const request = classifyPublish(client.id, packet.topic);
        // A will message is published by aedes while it closes the connection. IoT Hub forwards a will only
        // "as a telemetry message" with `iothub-MessageType: Will` when its topic is the device's telemetry
        // topic (the MQTT doc, "Using the MQTT protocol directly"); a will on any other topic is dropped.
        const will = client.closed;
        if (will && request.kind !== "telemetry") {
          deviceLog(client.id, `MQTT ${client.id} will message dropped: ${packet.topic}`);
          return done(new Error("a will message must use the device's telemetry topic"));
        }
        switch (request.kind) {
          case "twinGet":
          case "reportedPatch":
            twin.handle(client, request.kind, request.rid, packet.payload);
            return done(null);
          case "telemetry": {
            registry.sessions.touch(client.id);
            const stored = opts.onTelemetry?.(
              telemetryMessage(client.id, packet.topic, packet.payload as Buffer, { retain, will }),
            );
            if (!stored) return done(null);
            // A QoS 1 message is acknowledged (PUBACK) only once the hub has stored it: aedes sends the PUBACK
            // after `done`. A store that fails closes the connection, so the device sends it again.
            stored.then(
              () => done(null),
              (error: unknown) => {
                failed("storing telemetry", client, error);
                done(new Error("hub error"));
              },
            );
            return;
          }
          case "methodResponse":
            methods.handleResponse(client, packet.topic, packet.payload);
            return done(null);
          default:
            // Failing authorizePublish closes the connection, as IoT Hub does for a publish outside the device's topics.
            deviceLog(client.id, `MQTT ${client.id} publish refused: ${packet.topic}`);
            return done(new Error("topic not allowed for this device"));
        }
      } catch (error) {
        failed("publish", client, error);
        done(new Error("hub error"));
      }
    },

    // Defence in depth: the hub's own downstream messages are all a client is ever sent.
    authorizeForward(client, packet) {
      try {
        return isDownstream(client.id, packet.topic) ? packet : null;
      } catch (error) {
        failed("forward", client, error);
        return null;
      }
    },
  });
  withoutRouting(broker);
  const devicebound = createDevicebound({
    broker,
    clients,
    registry,
    downstream,
    events: opts.cloudToDevice,
  });

  const guarded =
    <A extends unknown[]>(where: string, handler: (...args: A) => void) =>
    (...args: A) => {
      try {
        handler(...args);
      } catch (error) {
        failed(where, null, error);
      }
    };

  // A clean session starts with no subscriptions; a persistent one (CleanSession=0, what the device SDKs
  // use) keeps its subscriptions from earlier connections, even across hub restarts (DeviceRecord). This
  // runs when aedes registers the client, before its CONNACK, so before any SUBSCRIBE of this connection.
  broker.on(
    "client",
    guarded("connect", (client: Client) => {
      if (!client.clean) return;
      registry.sessions.setSessionSubscription(client.id, "desiredSubscribed", false);
      registry.sessions.setSessionSubscription(client.id, "twinResponsesSubscribed", false);
      registry.sessions.setSessionSubscription(client.id, "methodsSubscribed", false);
      registry.sessions.setCloudToDeviceSubscription(client.id, false);
    }),
  );
  broker.on(
    "clientReady",
    guarded("connect", (client: Client) => {
      clients.set(client.id, client);
      registry.sessions.setConnected(client.id, true);
      const login = loginExpiry.get(client);
      if (login !== undefined) {
        loginMethod.set(client, login.method);
        expiry.arm(client, login.at);
      }
      const how =
        login?.method === "selfSigned"
          ? " (X.509 thumbprint)"
          : login?.method === "certificateAuthority"
            ? " (X.509 CA)"
            : "";
      deviceLog(client.id, `MQTT ${client.id} connected${how}`);
      // A persistent session that subscribed on an earlier connection gets methods at once.
      if (registry.find(client.id)?.methodsSubscribed) opts.methods?.available(client.id);
      devicebound.connected(client);
    }),
  );
  broker.on("subscribe", guarded("subscribe", acks.complete));
  // The methods subscription counts once aedes has granted it (its SUBACK is written in the same turn), so no
  // method request reaches the device before its SUBACK. (A SUBSCRIBE sent right after CONNECT can get here
  // before "clientReady": the session flag is set either way, and clientReady reports it.)
  broker.on(
    "subscribe",
    guarded("subscribe", (subs: Array<{ topic: string; qos: number }>, client: Client) => {
      if (client.closed) return;
      if (!subs.some((s) => s.topic === TOPICS.methodsFilter && s.qos !== 128)) return;
      registry.sessions.setSessionSubscription(client.id, "methodsSubscribed", true);
      opts.methods?.available(client.id);
    }),
  );
  // Explicit UNSUBSCRIBE, and the end of a clean session (aedes unsubscribes everything then).
  broker.on(
    "unsubscribe",
    guarded("unsubscribe", (filters: string[], client: Client) => {
      if (clients.get(client.id) !== client) return;
      for (const filter of filters) {
        const delivery = deliveryOf(client.id, filter);
        if (delivery === "desiredUpdates")
          registry.sessions.setSessionSubscription(client.id, "desiredSubscribed", false);
        if (delivery === "twinResponses")
          registry.sessions.setSessionSubscription(client.id, "twinResponsesSubscribed", false);
        if (delivery === "methods")
          registry.sessions.setSessionSubscription(client.id, "methodsSubscribed", false);
        if (delivery === "cloudToDevice") registry.sessions.setCloudToDeviceSubscription(client.id, false);
      }
    }),
  );
  broker.on(
    "clientDisconnect",
    guarded("disconnect", (client: Client) => {
      expiry.disarm(client);
      devicebound.disconnected(client);
      if (clients.get(client.id) !== client) return;
      clients.delete(client.id);
      registry.sessions.setConnected(client.id, false);
      deviceLog(client.id, `MQTT ${client.id} disconnected`);
      opts.methods?.gone(client.id, replaced.has(client) ? "replaced" : "disconnected");
    }),
  );
  // aedes reports some internal failures as "error" events; unheard, an "error" event would end the process.
  (broker as unknown as NodeJS.EventEmitter).on("error", (error: Error) => failed("broker", null, error));

  return {
    handle: (stream, tls) => {
      try {
        if (tls) tlsOf.set(stream, tls);
        const client = broker.handle(stream);
        acks.tap(client);
        guardPacketSize(stream, (bytes) =>
          log(
            `MQTT connection dropped: a packet announced ${bytes} bytes, over the ${MAX_MQTT_PACKET_BYTES} limit`,
          ),
        );
      } catch (error) {
        failed("connection setup", null, error);
        stream.destroy();
      }
    },
    pushDesired(deviceId, patch, version) {
      const client = clients.get(deviceId);
      if (!client || !registry.find(deviceId)?.desiredSubscribed) return;
      downstream.send(client, TOPICS.desiredUpdate(version), JSON.stringify({ ...patch, $version: version }));
    },
    disconnect(deviceId) {
      clients.get(deviceId)?.close();
    },
    methods: methods.channel,
    devicebound,
    get connectedCount() {
      return clients.size;
    },
    close: () => new Promise<void>((resolve) => broker.close(() => resolve())),
  };
}
