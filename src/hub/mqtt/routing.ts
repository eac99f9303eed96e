import type { Aedes } from "aedes";

/**
 * IoT Hub "isn't a full-featured MQTT broker": it has "no support for ... device-to-device communication"
 * and "doesn't persist Retain messages" ("Communicate with an IoT hub using the MQTT protocol"). Everything
 * the hub sends a device it sends itself, to that one client (twin responses, desired updates). So aedes'
 * routing is switched off:
 * - `NO_FAN_OUT` replaces aedes' topic emitter: subscriptions register nothing and publishes reach nobody,
 *   so a device that subscribes to `#` (or whose ID is `+`) is never matched against other devices' traffic.
 * - `withoutRouting` ends aedes' publish pipeline (packet copy, retained store, queueing for offline persistent
 *   sessions, the emitter, the `publish` event). Every publish aedes lets through has been fully handled by the
 *   hub's own modules in `authorizePublish` (twin requests answered, telemetry stored), and aedes' own publishes
 *   (`$SYS` notices) have nobody to reach. Nothing is retained or queued in memory for nobody, and a reported
 *   patch costs no routing work. A QoS 1 PUBACK is written by aedes before it calls `publish`, so
 *   acknowledgements are unchanged.
 */
export const NO_FAN_OUT = {
  on(_topic: string, _listener: unknown, done?: () => void) {
    done?.();
  },
  removeListener(_topic: string, _listener: unknown, done?: () => void) {
    done?.();
  },
  emit(_packet: unknown, done?: (error?: Error) => void) {
    done?.();
  },
  close(done?: () => void) {
    done?.();
  },
};

type Done = (error: Error | null) => void;

export function withoutRouting(broker: Aedes): void {
  // aedes calls publish(packet, client, done) and publish(packet, done).
  (broker as unknown as { publish: (packet: unknown, client?: unknown, done?: Done) => void }).publish = (
    _packet,
    client,
    done,
  ) => (typeof client === "function" ? (client as Done) : done)?.(null);
}
