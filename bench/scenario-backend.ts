/**
 * Scenario 1, back-end at scale: the product's add-tags-and-query logic against the original Python
 * tutorial's strategy, on registries of growing size, through the same SDK and the same hub.
 */
import { addTagsAndQuery } from "../src/backend/add-tags-and-query.js";
import { closeAll, connectMany, countingRegistry, pool, reportOnce, subscribe } from "./clients.js";
import { CONNECTIVITY, deviceId, PLANT, reportedFor, tagsFor } from "./dataset.js";
import { originalTutorial } from "./original-tutorial.js";
import type { Report } from "./report.js";
import { startHubInTemp } from "./servers.js";
import { figure, median, ms, now } from "./stats.js";

const S = "1 back-end";
const KEY = Buffer.from("bench-scenario-1-device-key-0001").toString("base64");
const TUTORIAL_DEVICE = "myDeviceId";

export interface BackendOptions {
  sizes: number[];
  /** Runs of the original strategy per size (ours runs more often: it is fast). */
  reps: number;
}

interface Answer {
  inPlant: string[];
  inPlantCellular: string[];
}

const sorted = (ids: readonly string[]) => [...ids].sort();

function sameAnswer(a: Answer, b: Answer): boolean {
  return (
    JSON.stringify(sorted(a.inPlant)) === JSON.stringify(sorted(b.inPlant)) &&
    JSON.stringify(sorted(a.inPlantCellular)) === JSON.stringify(sorted(b.inPlantCellular))
  );
}

export async function scenarioBackend(
  options: BackendOptions,
  report: Report,
): Promise<Record<string, unknown>> {
  const { hub, remove } = await startHubInTemp("bench-s1-");
  const counter = countingRegistry(hub.info.serviceConnectionString!, hub.info.caPem);
  const { registry } = counter;
  const target = { port: hub.info.port, caPem: hub.info.caPem, hostName: hub.info.hostName, key: KEY };
  const results: Record<string, unknown> = {};
  try {
    let have = 0;
    for (const size of [...options.sizes].sort((a, b) => a - b)) {
      // Grow the registry to `size` devices (plus the tutorial's own device): bulk create, tags, and a few
      // devices that report connectivity over MQTT (those in the queried plant and a tenth of the others:
      // reported properties need a device connection each).
      const setupStart = now();
      const fresh = Array.from({ length: size - have }, (_, k) => have + k);
      for (let first = 0; first < fresh.length; first += 100) {
        const batch = fresh.slice(first, first + 100).map((i) => ({
          deviceId: deviceId("dev", i),
          status: "enabled" as const,
          authentication: { symmetricKey: { primaryKey: KEY, secondaryKey: KEY } },
        }));
        await registry.addDevices(batch);
      }
      await pool(fresh, 16, async (i) => {
        await registry.updateTwin(deviceId("dev", i), { tags: tagsFor(i) }, "*");
      });
      const inPlant = (i: number) => (tagsFor(i).location as { plant?: string } | undefined)?.plant === PLANT;
      const reporters = fresh.filter((i) => (i % 10 === 0 || inPlant(i)) && reportedFor(i) !== undefined);
      const { clients } = await connectMany(
        target,
        reporters.map((i) => deviceId("dev", i)),
      );
      await Promise.all(
        clients.map(async (c, k) => {
          await subscribe(c, "$iothub/twin/res/#");
          await reportOnce(c, reportedFor(reporters[k]));
        }),
      );
      await closeAll(clients);
      have = size;
      console.log(
        `  ${size.toLocaleString("en-US")} devices ready in ${(ms(setupStart) / 1000).toFixed(1)} s` +
          ` (${reporters.length} reported connectivity over MQTT)`,
      );

      const input = { deviceId: TUTORIAL_DEVICE, plant: PLANT, region: "US", connectivity: CONNECTIVITY };
      const ours = { ms: [] as number[], requests: [] as number[] };
      const original = { ms: [] as number[], requests: [] as number[] };
      let reference: Answer | undefined;
      const check = (who: string, answer: Answer) => {
        reference ??= answer;
        if (!sameAnswer(reference, answer)) {
          throw new Error(
            `${who} answered differently at ${size} devices: ${JSON.stringify(answer).slice(0, 300)} vs ${JSON.stringify(reference).slice(0, 300)}`,
          );
        }
      };
      // Interleaved, so both see the same machine noise; ours gets more runs since each is short.
      const oursPerRound = 5;
      for (let rep = 0; rep < options.reps; rep++) {
        for (let k = 0; k < oursPerRound; k++) {
          const before = counter.requests;
          const t = now();
          const result = await addTagsAndQuery(registry, {
            ...input,
            update: true,
            waitSeconds: 0,
            timeoutSeconds: 120,
          });
          ours.ms.push(ms(t));
          ours.requests.push(counter.requests - before);
          check("add-tags-and-query", result);
        }
        const before = counter.requests;
        const t = now();
        const answer = await originalTutorial(registry, input);
        original.ms.push(ms(t));
        original.requests.push(counter.requests - before);
        check("the original strategy", answer);
      }
      const n = size.toLocaleString("en-US");
      const f = {
        oursMs: figure(ours.ms, "ms"),
        oursRequests: figure(ours.requests, ""),
        originalMs: figure(original.ms, "ms"),
        originalRequests: figure(original.requests, ""),
      };
      // One ratio per round: the original's run over the median of ours in the same round.
      const perRound = (slow: number[], fast: number[]) =>
        slow.map((v, r) => v / median(fast.slice(r * oursPerRound, (r + 1) * oursPerRound)));
      const ratios = {
        time: figure(perRound(original.ms, ours.ms), "x"),
        requests: figure(perRound(original.requests, ours.requests), "x"),
      };
      const big = size >= 10_000;
      report.add(S, `${n} devices: add-tags-and-query time`, f.oursMs);
      report.add(S, `${n} devices: add-tags-and-query requests`, f.oursRequests);
      report.add(S, `${n} devices: original strategy time`, f.originalMs);
      report.add(S, `${n} devices: original strategy requests`, f.originalRequests);
      report.add(
        S,
        `${n} devices: speed-up (original / ours)`,
        ratios.time,
        big ? { atLeast: 20, text: ">= 20x" } : undefined,
      );
      report.add(
        S,
        `${n} devices: request ratio (original / ours)`,
        ratios.requests,
        big ? { atLeast: 100, text: ">= 100x" } : undefined,
      );
      results[String(size)] = {
        ...f,
        ratios,
        answer: { inPlant: reference?.inPlant.length, inPlantCellular: reference?.inPlantCellular.length },
      };
      console.log(
        `  ${n}: ours ${f.oursMs.median.toFixed(1)} ms / ${f.oursRequests.median} requests; original ` +
          `${f.originalMs.median.toFixed(0)} ms / ${f.originalRequests.median} requests; same answer ` +
          `(${reference?.inPlant.length} in ${PLANT}, ${reference?.inPlantCellular.length} of them ${CONNECTIVITY})`,
      );
    }
  } finally {
    counter.close();
    await remove();
  }
  return results;
}
