import type { Server as HttpServer } from "node:http";
import type { Duplex } from "node:stream";
import type { FastifyInstance } from "fastify";
import type { Authorizer } from "./auth/authorizer.js";
import type { ChannelEvents } from "./c2d/channel.js";
import { type ConnectionGate, guardHttpServer } from "./connection-limits.js";
import type { ProtocolTargets } from "./listener.js";
import { perKeyLimit } from "./log.js";
import { MethodInvoker } from "./methods/invoker.js";
import type { MqttFrontend } from "./mqtt/broker.js";
import type { TelemetryMessage } from "./mqtt/telemetry.js";
import type { DeviceRegistry } from "./registry/registry.js";
import type { RestOptions } from "./rest/server.js";
import type { Throttle } from "./throttle/index.js";

/** Start loading the front ends this long after the hub is listening, if no connection asked for them first. */
const PRELOAD_AFTER_MS = 50;

interface Loaded {
  mqtt: MqttFrontend;
  methods: MethodInvoker;
  rest: FastifyInstance<HttpServer>;
  unguardHttp: () => void;
  /** Stops serving WebSocket upgrades (websocket/upgrade.ts). */
  stopWebSockets: () => void;
}

/**
 * The two protocol front ends, MQTT (aedes) and HTTPS REST (fastify), loaded after the hub is listening.
 * Loading those libraries is most of a restart's cost (about 0.15 s of module loading, more than Node's own
 * start), so the port is bound and the store opened first, and they load right after: on the first
 * connection, or `PRELOAD_AFTER_MS` after the start, whichever comes first. A connection that arrives
 * meanwhile waits in its socket's buffer and is served once they are ready.
 */
export function lazyFrontends(deps: {
  registry: DeviceRegistry;
  authorizer: Authorizer;
  gate: ConnectionGate;
  log: (line: string) => void;
  throttle?: Throttle;
  querySource?: RestOptions["querySource"];
  /** Each device-to-cloud message (see MqttFrontend): the Event Hubs-compatible endpoint's store. */
  onTelemetry?: (message: TelemetryMessage) => Promise<void> | undefined;
  /** The AMQP server, for AMQP over WebSockets on the HTTPS side (websocket/). */
  amqp?: (stream: Duplex) => void;
  /** Told when a device can take cloud-to-device messages (see MqttFrontend). */
  cloudToDevice?: ChannelEvents;
}) {
  let loaded: Loaded | undefined;
  let loading: Promise<Loaded> | undefined;
  const load = () => {
    loading ??= (async () => {
      const [{ createMqttFrontend }, { createRestApi }, { serveWebSockets }] = await Promise.all([
        import("./mqtt/broker.js"),
        import("./rest/server.js"),
        import("./websocket/upgrade.js"),
      ]);
      const { registry, authorizer, log, gate, throttle, querySource, onTelemetry, cloudToDevice } = deps;
      // Direct methods: the REST side invokes, the MQTT side delivers and answers (methods/).
      const methods = new MethodInvoker(perKeyLimit(log));
      const mqtt = await createMqttFrontend({
        registry,
        authorizer,
        log,
        throttle,
        onTelemetry,
        methods,
        cloudToDevice,
      });
      methods.attach(mqtt.methods);
      const rest = await createRestApi({ registry, authorizer, log, throttle, querySource, methods });
      // MQTT and AMQP over WebSockets: upgrades on the HTTPS side ("... over WebSocket on TCP port 443").
      const stopWebSockets = serveWebSockets(
        rest.server,
        { mqtt: (stream, tls) => mqtt.handle(stream, tls), amqp: deps.amqp },
        gate,
        log,
      );
      loaded = { mqtt, methods, rest, unguardHttp: guardHttpServer(rest.server, gate), stopWebSockets };
      return loaded;
    })();
    const attempt = loading;
    attempt.catch((error: unknown) => {
      // Possibly passing (out of file descriptors while connections flood in): the next connection tries again.
      if (loading === attempt) loading = undefined;
      deps.log(
        `the hub could not load its MQTT and HTTPS front ends (${(error as Error)?.message}); trying again on the next connection`,
      );
    });
    return attempt;
  };
  const preload = setTimeout(load, PRELOAD_AFTER_MS);
  const serve = (socket: Duplex, use: (l: Loaded) => void) => {
    if (loaded) return use(loaded);
    load().then(use, () => socket.destroy());
  };

  const targets: ProtocolTargets = {
    http: (socket) => serve(socket, (l) => l.rest.server.emit("connection", socket)),
    mqtt: (socket) => serve(socket, (l) => l.mqtt.handle(socket)),
  };
  return {
    targets,
    /** The MQTT side, once loaded: a device can be connected only after that. */
    get mqtt(): MqttFrontend | undefined {
      return loaded?.mqtt;
    },
    /** Direct methods waiting for an answer or for their device. */
    get pendingMethods(): number {
      return loaded?.methods.pending ?? 0;
    },
    /**
     * Answers every direct method call still waiting (503) and waits for those answers to be written: the hub does
     * this before it drops its connections, so a stop answers callers promptly.
     */
    async closeMethods() {
      await loaded?.methods.close();
    },
    async close() {
      clearTimeout(preload);
      const l = loaded ?? (await loading?.catch(() => undefined));
      if (!l) return;
      await l.methods.close();
      l.stopWebSockets();
      await l.mqtt.close();
      l.unguardHttp();
      await l.rest.close();
    },
  };
}
