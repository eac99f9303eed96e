import { compareIds } from "../registry/devices.js";
import type { DeviceRegistry } from "../registry/registry.js";
import type { DeviceRecord } from "../twin/device.js";
import { renderTwin } from "../twin/twin.js";
import type { TwinDocument, TwinSource } from "../twin/types.js";

/**
 * Query results that lag writes, as IoT Hub's do: "IoT Hub query language" warns that query results are eventually
 * consistent (an update may take a while to show up), while `GET /twins/{id}` always returns the current twin.
 *
 * Queries read the twins as they were `delayMs` ago. The registry reports every record it is about to replace or
 * remove; this keeps, per device, the records that were current at the start of each change in the last `delayMs`.
 * The state of a device at time T is then the `before` of its first change after T, or its current record when it
 * has not changed since T. Memory stays bounded: changes of one device closer together than `delayMs / 16` keep
 * only the first one's `before` (the view of that device is then up to `delayMs / 16` newer than asked), and at
 * most `maxEntries` entries are kept overall (the oldest go first, making those devices' lag shorter, never longer).
 */
export class DelayedTwinSource implements TwinSource {
  private readonly log = new Map<string, Array<{ at: number; before: DeviceRecord | undefined }>>();
  /** Every entry in time order, for pruning from the oldest. */
  private readonly order: Array<{ at: number; id: string }> = [];
  private orderHead = 0;
  private entries = 0;
  private readonly granularityMs: number;

  constructor(
    private readonly registry: DeviceRegistry,
    readonly delayMs: number,
    private readonly maxEntries = 100_000,
    private readonly now: () => number = () => Date.now(),
  ) {
    this.granularityMs = Math.max(1, delayMs / 16);
  }

  /** On the registry's `recordChanged`: `deviceId`'s record is about to change; `before` is the record so far. */
  recordChanged(deviceId: string, before: DeviceRecord | undefined): void {
    const t = this.now();
    this.prune(t);
    let list = this.log.get(deviceId);
    const last = list?.at(-1);
    if (last && t - last.at < this.granularityMs) return;
    if (!list) {
      list = [];
      this.log.set(deviceId, list);
    }
    list.push({ at: t, before });
    this.order.push({ at: t, id: deviceId });
    this.entries++;
    while (this.entries > this.maxEntries) this.dropOldest();
  }

  /** Number of twins as of `delayMs` ago (COUNT() of all twins answers from this). */
  get size(): number {
    const asOf = this.now() - this.delayMs;
    this.prune(this.now());
    let n = this.registry.size;
    for (const [id, list] of this.log) {
      const then = firstAfter(list, asOf);
      if (!then) continue;
      n += (then.before ? 1 : 0) - (this.registry.find(id) ? 1 : 0);
    }
    return n;
  }

  /** Number of changes remembered (bounded by `maxEntries`). */
  get rememberedChanges(): number {
    return this.entries;
  }

  *scan(afterId?: string): Iterable<TwinDocument> {
    const t = this.now();
    this.prune(t);
    const asOf = t - this.delayMs;
    // Devices deleted since `asOf` still show; they are no longer in the registry.
    const ghosts = [...this.log.keys()]
      .filter((id) => (afterId === undefined || compareIds(id, afterId) > 0) && !this.registry.find(id))
      .sort(compareIds);
    let g = 0;
    for (const record of this.registry.scanRecords(afterId)) {
      while (g < ghosts.length && compareIds(ghosts[g]!, record.deviceId) < 0) {
        const then = this.stateAt(ghosts[g++]!, asOf);
        if (then) yield renderTwin(then);
      }
      const then = this.stateAt(record.deviceId, asOf, record);
      if (then) yield renderTwin(then);
    }
    for (; g < ghosts.length; g++) {
      const then = this.stateAt(ghosts[g]!, asOf);
      if (then) yield renderTwin(then);
    }
  }

  private stateAt(id: string, asOf: number, current?: DeviceRecord): DeviceRecord | undefined {
    const list = this.log.get(id);
    const then = list && firstAfter(list, asOf);
    return then ? then.before : (current ?? this.registry.find(id));
  }

  /** Forgets changes older than the delay: queries no longer need what came before them. */
  private prune(t: number): void {
    const horizon = t - this.delayMs;
    while (this.orderHead < this.order.length && this.order[this.orderHead]!.at <= horizon) this.dropOldest();
  }

  private dropOldest(): void {
    const oldest = this.order[this.orderHead++];
    if (!oldest) return;
    const list = this.log.get(oldest.id);
    if (list) {
      list.shift();
      if (list.length === 0) this.log.delete(oldest.id);
    }
    this.entries--;
    // Compact the queue now and then so it does not keep its consumed head forever.
    if (this.orderHead > 1024 && this.orderHead * 2 > this.order.length) {
      this.order.splice(0, this.orderHead);
      this.orderHead = 0;
    }
  }
}

function firstAfter<T extends { at: number }>(list: T[], asOf: number): T | undefined {
  for (const e of list) if (e.at > asOf) return e;
  return undefined;
}
