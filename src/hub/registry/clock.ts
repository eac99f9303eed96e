/**
 * The registry's timestamps (ISO 8601, as IoT Hub writes them). The last one made is reused within the same
 * millisecond: a reported patch stamps every key it sets.
 */
export class Timestamps {
  private last = { at: Number.NaN, iso: "" };

  constructor(private readonly clock: () => Date = () => new Date()) {}

  now(): string {
    const date = this.clock();
    const at = date.getTime();
    if (at !== this.last.at) this.last = { at, iso: date.toISOString() };
    return this.last.iso;
  }
}
