import type { Server as HttpServer } from "node:http";
import type { Duplex } from "node:stream";
import type { FastifyInstance } from "fastify";
import type { Authorizer } from "./auth/authorizer.js";
import type { ChannelEvents } from "./c2d/channel.js";
import { type ConnectionGate, guardHttpServer } from "./connection-limits.js";
import type { ProtocolTargets } from "./listener.js";
import type { MqttFrontend } from "./mqtt/broker.js";
import type { TelemetryMessage } from "./mqtt/telemetry.js";
import type { DeviceRegistry } from "./registry.js";
import type { RestOptions } from "./rest/server.js";
import type { Throttle } from "./throttle/index.js";

/** Start loading the front ends this long after the hub is listening, if no connection asked for them first. */
const PRELOAD_AFTER_MS = 50;

interface Loaded {
  mqtt: MqttFrontend;
  rest: FastifyInstance<HttpServer>;
  unguardHttp: () => void;
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
  /** Told when a device can take cloud-to-device messages (see MqttFrontend). */
  cloudToDevice?: ChannelEvents;
}) {
  let loaded: Loaded | undefined;
  let loading: Promise<Loaded> | undefined;
  const load = () => {
    loading ??= (async () => {
      const [{ createMqttFrontend }, { createRestApi }] = await Promise.all([
        import("./mqtt/broker.js"),
        import("./rest/server.js"),
      ]);
      const { registry, authorizer, log, gate, throttle, querySource, onTelemetry, cloudToDevice } = deps;
      const mqtt = await createMqttFrontend({
        registry,
        authorizer,
        log,
        throttle,
        onTelemetry,
        cloudToDevice,
      });
      const rest = await createRestApi({ registry, authorizer, log, throttle, querySource });
      loaded = { mqtt, rest, unguardHttp: guardHttpServer(rest.server, gate) };
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
    async close() {
      clearTimeout(preload);
      const l = loaded ?? (await loading?.catch(() => undefined));
      if (!l) return;
      await l.mqtt.close();
      l.unguardHttp();
      await l.rest.close();
    },
  };
}
