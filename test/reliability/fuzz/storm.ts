import type { HubAddress } from "../support.js";
import { checkHttp, checkMqtt, sdkStartSettled, type Violation } from "./checks.js";
import { type HttpWorld, httpCase } from "./http-cases.js";
import { type FuzzDevice, mqttCase } from "./mqtt-cases.js";
import { Rng } from "./rng.js";
import { exchange } from "./wire.js";

/**
 * The storm: `cases` fuzz cases over `concurrency` parallel lanes. Case `i` runs on lane `i % concurrency`
 * and logs in (when it does) as that lane's device, so no two cases in flight share a device, and case `i`
 * is the same bytes whenever the seed and concurrency are the same.
 */

export interface Finding extends Violation {
  caseIndex: number;
  /** When the case ran (epoch ms): findings of cases cut short by a crash are its consequence. */
  startedAt: number;
  endedAt: number;
  category: string;
  description: string[];
  /** The case's input bytes (the CONNECT sequence or the HTTP request). */
  input: Buffer;
}

export interface StormResult {
  counts: Record<string, number>;
  /** When each case ran (epoch ms), to name the cases around an event the hub reports. */
  spans: Array<{ index: number; start: number; end: number; polluting: boolean }>;
  findings: Finding[];
  /** Cases run (fewer than asked if the hub died). */
  ran: number;
  /** Cases that could not reach the hub (it was dead or stuck): to run again on the next hub. */
  unreached: number[];
}

export interface StormWorld {
  hub: HubAddress;
  seed: number;
  marker: Buffer;
  hostName: string;
  ownerKey: string;
  victimId: string;
  /** One MQTT device per lane. */
  laneDevices: readonly FuzzDevice[];
  scratchIds: readonly string[];
}

export const tagOf = (seed: number, index: number) => `fuzz-${seed}-${index}`;

/** Builds case `index` (without running it). */
export function buildCase(world: StormWorld, index: number) {
  const rng = Rng.forCase(world.seed, index);
  const tag = tagOf(world.seed, index);
  if (rng.chance(0.55)) {
    const c = mqttCase(rng, {
      hostName: world.hostName,
      self: world.laneDevices[index % world.laneDevices.length],
      victimId: world.victimId,
      tag,
    });
    return { protocol: "mqtt" as const, c };
  }
  const httpWorld: HttpWorld = {
    hostName: world.hostName,
    ownerKey: world.ownerKey,
    victimId: world.victimId,
    scratchIds: world.scratchIds,
    tag,
  };
  return { protocol: "http" as const, c: httpCase(rng, httpWorld) };
}

export async function runStorm(
  world: StormWorld,
  indices: readonly number[],
  opts: {
    alive: () => boolean;
    onCaseStart?: (index: number) => void;
    /** `reached`: the case got through the TLS handshake (else it is listed in `unreached`). */
    onCaseDone?: (index: number, reached: boolean) => void;
  },
): Promise<StormResult> {
  const counts: Record<string, number> = {};
  const findings: Finding[] = [];
  const spans: StormResult["spans"] = [];
  const unreached: number[] = [];
  let ran = 0;
  const lanes = world.laneDevices.length;
  const lane = async (k: number) => {
    for (const index of indices) {
      if (index % lanes !== k) continue;
      if (!opts.alive()) return;
      opts.onCaseStart?.(index);
      const startedAt = Date.now();
      const built = buildCase(world, index);
      const c = built.c;
      let violations: Violation[];
      let input: Buffer;
      let connectError: string | undefined;
      if (built.protocol === "mqtt") {
        input = Buffer.concat([built.c.first, built.c.second]);
        const x = await exchange(
          world.hub,
          built.c.first,
          built.c.second,
          built.c.sdkStart ? { settled: sdkStartSettled } : {},
        );
        connectError = x.connectError;
        violations = connectError ? [] : checkMqtt(built.c, x, world.marker);
      } else {
        input = built.c.bytes;
        const x = await exchange(world.hub, built.c.bytes, Buffer.alloc(0));
        connectError = x.connectError;
        violations = connectError ? [] : checkHttp(built.c, x, world.marker);
      }
      // A case that never got through the TLS handshake (the hub dead or stuck) did not run.
      if (connectError) {
        unreached.push(index);
        opts.onCaseDone?.(index, false);
        continue;
      }
      counts[c.category] = (counts[c.category] ?? 0) + 1;
      ran++;
      spans.push({
        index,
        start: startedAt,
        end: Date.now(),
        polluting: c.description.some((d) => d.includes("pollution")),
      });
      for (const v of violations)
        findings.push({
          ...v,
          caseIndex: index,
          startedAt,
          endedAt: Date.now(),
          category: c.category,
          description: c.description,
          input,
        });
      opts.onCaseDone?.(index, true);
    }
  };
  await Promise.all(Array.from({ length: lanes }, (_, k) => lane(k)));
  return { counts, spans, findings, ran, unreached };
}

/** The smallest-input finding of each kind: the one to reproduce first. */
export function smallestPerKind<T extends { kind: string; input: Buffer }>(findings: readonly T[]): T[] {
  const best = new Map<string, T>();
  for (const f of findings) {
    const have = best.get(f.kind);
    if (!have || f.input.length < have.input.length) best.set(f.kind, f);
  }
  return [...best.values()];
}

/** A finding as a few lines: kind, how to reproduce it, what the case did, its bytes (cut at 600). */
export function formatFinding(f: Finding, seed: number, total: number): string {
  const hex = f.input.subarray(0, 600).toString("hex");
  const printable = f.input
    .subarray(0, 600)
    .toString("latin1")
    .replace(/[^\x20-\x7e]/g, ".");
  return [
    `- ${f.kind} (${total} case${total === 1 ? "" : "s"}); smallest: case ${f.caseIndex} [${f.category}], ${f.input.length} bytes`,
    `  reproduce: FUZZ_SEED=${seed} FUZZ_ONLY=${f.caseIndex} npx vitest run test/reliability/fuzz.test.ts`,
    `  detail: ${f.detail}`,
    `  case: ${f.description.join(" | ").slice(0, 600)}`,
    `  bytes (text): ${printable}${f.input.length > 600 ? " ..." : ""}`,
    `  bytes (hex): ${hex}${f.input.length > 600 ? " ..." : ""}`,
  ].join("\n");
}
