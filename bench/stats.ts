/** Small statistics helpers: every figure in results.json is a median with its spread over repeated runs. */

export interface Figure {
  /** Median over the runs. */
  median: number;
  min: number;
  max: number;
  /** (max - min) / median, or 0 for a single run. */
  relativeSpread: number;
  runs: number[];
  unit: string;
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Nearest-rank percentile (p in 0..100) of unsorted values; NaN for no values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function figure(runs: readonly number[], unit: string): Figure {
  const m = median(runs);
  const min = Math.min(...runs);
  const max = Math.max(...runs);
  return {
    median: m,
    min,
    max,
    relativeSpread: runs.length > 1 && m !== 0 ? (max - min) / Math.abs(m) : 0,
    runs: [...runs],
    unit,
  };
}

/** Runs `once` `reps` times and collects the named numbers of each run into figures. */
export async function repeat<K extends string>(
  reps: number,
  units: Record<K, string>,
  once: (rep: number) => Promise<Record<K, number>>,
): Promise<Record<K, Figure>> {
  const collected = Object.fromEntries(Object.keys(units).map((k) => [k, [] as number[]])) as Record<
    K,
    number[]
  >;
  for (let rep = 0; rep < reps; rep++) {
    const values = await once(rep);
    for (const k of Object.keys(units) as K[]) collected[k].push(values[k]);
  }
  return Object.fromEntries(
    (Object.keys(units) as K[]).map((k) => [k, figure(collected[k], units[k])]),
  ) as Record<K, Figure>;
}

/** A latency recorder that keeps every sample (a few hundred thousand at most per run). */
export class Latencies {
  private samples: number[] = [];
  add(ms: number): void {
    this.samples.push(ms);
  }
  get count(): number {
    return this.samples.length;
  }
  p(p: number): number {
    return percentile(this.samples, p);
  }
  reset(): void {
    this.samples = [];
  }
}

export function ms(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

export const now = () => process.hrtime.bigint();

export function fmt(value: number, unit: string): string {
  if (!Number.isFinite(value)) return "n/a";
  if (unit === "ms") return value < 10 ? `${value.toFixed(2)} ms` : `${value.toFixed(0)} ms`;
  if (unit === "s") return `${value.toFixed(2)} s`;
  if (unit === "us") return `${value.toFixed(0)} µs`;
  if (unit === "MB") return `${value.toFixed(0)} MB`;
  if (unit === "x") return `${value.toFixed(value < 10 ? 1 : 0)}x`;
  if (unit === "%") return `${(value * 100).toFixed(0)}%`;
  if (unit === "/s") return `${Math.round(value).toLocaleString("en-US")}/s`;
  return `${Math.round(value).toLocaleString("en-US")}${unit ? ` ${unit}` : ""}`;
}
