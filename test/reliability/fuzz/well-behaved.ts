import { Client as DeviceClient } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import type { Registry } from "azure-iothub";
import { registryFor, twinOf } from "../../hub/support.js";

/**
 * The well-behaved side during the storm: the victim device through the real device SDK (twin GET, then
 * reported patches carrying the marker) and the real service SDK's Registry (desired patch with the marker,
 * then twin GET checking it), each round trip timed against a generous bound.
 */

export interface WellBehavedStats {
  deviceRounds: number;
  serviceRounds: number;
  slowest: { device: number; service: number };
  failures: string[];
  /** The device SDK saw its connection drop. */
  deviceDisconnects: number;
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
    }),
  ]);
}

export async function startWellBehaved(opts: {
  serviceConnectionString: string;
  deviceConnectionString: string;
  caPem: string;
  victimId: string;
  marker: string;
  boundMs: number;
}): Promise<{ stop(): Promise<WellBehavedStats> }> {
  const stats: WellBehavedStats = {
    deviceRounds: 0,
    serviceRounds: 0,
    slowest: { device: 0, service: 0 },
    failures: [],
    deviceDisconnects: 0,
  };
  const device = DeviceClient.fromConnectionString(opts.deviceConnectionString, Mqtt);
  await device.setOptions({ ca: opts.caPem });
  device.on("disconnect", () => stats.deviceDisconnects++);
  device.on("error", (e: Error) => stats.failures.push(`device client error: ${e.message}`));
  await within(device.open(), opts.boundMs, "device open");
  const twin = await within(device.getTwin(), opts.boundMs, "device getTwin");
  const registry: Registry = registryFor(opts.serviceConnectionString, opts.caPem);

  let running = true;
  const deviceLoop = (async () => {
    for (let round = 1; running; round++) {
      const start = Date.now();
      try {
        await within(
          new Promise<void>((resolve, reject) =>
            twin.properties.reported.update({ marker: opts.marker, round }, (err?: Error) =>
              err ? reject(err) : resolve(),
            ),
          ),
          opts.boundMs,
          `device reported patch ${round}`,
        );
        // A fresh twin GET through the SDK: the answer must be the victim's own twin.
        const fresh = await within(device.getTwin(), opts.boundMs, `device twin GET ${round}`);
        if (fresh.properties.reported.round !== round)
          stats.failures.push(
            `device round ${round}: twin GET shows reported.round ${fresh.properties.reported.round}`,
          );
        stats.deviceRounds++;
      } catch (error) {
        stats.failures.push((error as Error).message);
      }
      stats.slowest.device = Math.max(stats.slowest.device, Date.now() - start);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const serviceLoop = (async () => {
    for (let round = 1; running; round++) {
      const start = Date.now();
      try {
        await within(
          registry.updateTwin(
            opts.victimId,
            { properties: { desired: { marker: opts.marker, round } } },
            "*",
          ),
          opts.boundMs,
          `Registry.updateTwin ${round}`,
        );
        const doc = await within(twinOf(registry, opts.victimId), opts.boundMs, `Registry.getTwin ${round}`);
        const desired = doc.properties.desired as Record<string, unknown>;
        if (desired.round !== round || desired.marker !== opts.marker)
          stats.failures.push(
            `service round ${round}: twin shows desired ${JSON.stringify(desired).slice(0, 100)}`,
          );
        stats.serviceRounds++;
      } catch (error) {
        stats.failures.push((error as Error).message);
      }
      stats.slowest.service = Math.max(stats.slowest.service, Date.now() - start);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();

  return {
    async stop() {
      running = false;
      await Promise.all([deviceLoop, serviceLoop]);
      await device.close().catch(() => {});
      return stats;
    },
  };
}
