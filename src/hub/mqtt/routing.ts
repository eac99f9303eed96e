import type { Aedes } from "aedes";

/**
 * IoT Hub "isn't a full-featured MQTT broker": it has "no support for ... device-to-device communication"
 * and "doesn't persist Retain messages" ("Communicate with an IoT hub using the MQTT protocol"). Everything
 * the hub sends a device it sends itself, to that one client (twin responses, desired updates). So aedes'
 * routing is switched off:
 * - `NO_FAN_OUT` replaces aedes' topic emitter: subscriptions register nothing and publishes reach nobody,
 *   so a device that subscribes to `#` (or whose ID is `+`) is never matched against other devices' traffic,
 *   and telemetry costs no matching work per subscriber.
 * - `withoutStoredRouting` stops aedes' persistence from queueing QoS 1 publishes for offline persistent
 *   sessions (`subscriptionsByTopic`) and from keeping retained messages (`storeRetained`): either would
 *   hold device messages in memory, without bound, for nobody.
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

interface RoutingPersistence {
  subscriptionsByTopic(topic: string): Promise<unknown[]>;
  storeRetained(packet: unknown): Promise<void>;
}

export function withoutStoredRouting(broker: Aedes): void {
  const persistence = (broker as unknown as { persistence: RoutingPersistence }).persistence;
  persistence.subscriptionsByTopic = async () => [];
  persistence.storeRetained = async () => {};
}
