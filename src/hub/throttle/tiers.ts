/**
 * IoT Hub's operation throttles per tier, for a hub of one unit ("IoT Hub quotas and throttling" > "Operation
 * throttles", tables "Basic and standard tier operations" and "Standard tier operations"; ms.date 05/21/2025):
 *
 * | Throttle                      | Free, B1, S1                        | B2, S2                              | B3, S3               |
 * | Identity registry operations  | 1.67/sec/unit (100/min/unit)        | 1.67/sec/unit (100/min/unit)        | 83.33/sec/unit (5,000/min/unit) |
 * | New device connections        | Higher of 100/sec or 12/sec/unit    | 120 new connections/sec/unit        | 6,000 new connections/sec/unit |
 * | Queries                       | 20/min/unit                         | 20/min/unit                         | 1,000/min/unit       |
 * | Twin (device and module) reads| 100/sec                             | Higher of 100/sec or 10/sec/unit    | 500/sec/unit         |
 * | Twin updates (device, module) | 50/sec                              | Higher of 50/sec or 5/sec/unit      | 250/sec/unit         |
 *
 * (Twin reads and updates sit in the "Standard tier operations" table, whose first column is "Free and S1".)
 */

export const TIERS = ["F1", "S1", "S2", "S3"] as const;
export type Tier = (typeof TIERS)[number];

/** The throttled operation classes this hub serves. */
export type Operation = "registry" | "connect" | "query" | "twinRead" | "twinUpdate";

/** One throttle: `count` operations per `perSeconds`. */
export interface Rate {
  count: number;
  perSeconds: number;
}

export type ThrottleLimits = Record<Operation, Rate>;

const perMinute = (count: number): Rate => ({ count, perSeconds: 60 });
const perSecond = (count: number): Rate => ({ count, perSeconds: 1 });

const FREE_AND_S1: ThrottleLimits = {
  registry: perMinute(100),
  connect: perSecond(100),
  query: perMinute(20),
  twinRead: perSecond(100),
  twinUpdate: perSecond(50),
};

export const TIER_LIMITS: Record<Tier, ThrottleLimits> = {
  F1: FREE_AND_S1,
  S1: FREE_AND_S1,
  S2: {
    registry: perMinute(100),
    connect: perSecond(120),
    query: perMinute(20),
    twinRead: perSecond(100),
    twinUpdate: perSecond(50),
  },
  S3: {
    registry: perMinute(5000),
    connect: perSecond(6000),
    query: perMinute(1000),
    twinRead: perSecond(500),
    twinUpdate: perSecond(250),
  },
};

/** The tier named by `name` (case-insensitive), or undefined. */
export function parseTier(name: string): Tier | undefined {
  const upper = name.trim().toUpperCase();
  return (TIERS as readonly string[]).includes(upper) ? (upper as Tier) : undefined;
}
