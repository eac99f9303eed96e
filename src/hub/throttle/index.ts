import { TokenBucket } from "./bucket.js";
import { type Operation, type ThrottleLimits, TIER_LIMITS, type Tier } from "./tiers.js";

export { type Operation, parseTier, type ThrottleLimits, TIER_LIMITS, TIERS, type Tier } from "./tiers.js";

/**
 * "Operation throttles are rate limitations that are applied in minute ranges" ("IoT Hub quotas and throttling"):
 * each operation class gets a token bucket refilled at the tier's rate that holds one minute of it, so a burst of
 * up to a minute's allowance passes and a sustained excess is refused. IoT Hub first queues excess requests
 * ("traffic shaping") and answers "429 ThrottlingException" once its queue is full; this hub does not queue: an
 * operation over the allowance is refused at once, which is what a client must handle either way.
 */
export const WINDOW_SECONDS = 60;

export interface Throttle {
  readonly name: string;
  /** Takes `cost` operations of this class from its allowance; false when over quota. */
  allow(operation: Operation, cost?: number): boolean;
}

export interface ThrottleOptions {
  /** A tier of one unit, or explicit limits (tests use small ones). */
  limits: Tier | ThrottleLimits;
  now?: () => number;
}

export function createThrottle({ limits, now }: ThrottleOptions): Throttle {
  const table = typeof limits === "string" ? TIER_LIMITS[limits] : limits;
  const buckets = new Map<Operation, TokenBucket>();
  for (const [op, rate] of Object.entries(table) as [Operation, ThrottleLimits[Operation]][]) {
    const perSecond = rate.count / rate.perSeconds;
    buckets.set(op, new TokenBucket(perSecond, Math.max(1, perSecond * WINDOW_SECONDS), now));
  }
  return {
    name: typeof limits === "string" ? limits : "custom",
    allow: (operation, cost = 1) => buckets.get(operation)?.take(cost) ?? true,
  };
}
