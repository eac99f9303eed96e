/**
 * A token bucket: `capacity` tokens, refilled continuously at `perSecond`; an operation takes one token or is
 * refused. Time comes from `now` (milliseconds, monotonic) so tests can drive it.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly perSecond: number,
    readonly capacity: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = capacity;
    this.last = now();
  }

  /** Takes `n` tokens if they are there; false (and nothing taken) otherwise. */
  take(n = 1): boolean {
    const t = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((t - this.last) / 1000) * this.perSecond);
    this.last = t;
    // a hair of tolerance: 3 s at 20/min must make exactly one token despite floating point
    if (this.tokens + 1e-9 < n) return false;
    this.tokens = Math.max(0, this.tokens - n);
    return true;
  }

  /** Seconds until `n` tokens are available (0 when they are now). */
  secondsUntil(n = 1): number {
    const t = this.now();
    const tokens = Math.min(this.capacity, this.tokens + ((t - this.last) / 1000) * this.perSecond);
    return tokens >= n ? 0 : (n - tokens) / this.perSecond;
  }
}
