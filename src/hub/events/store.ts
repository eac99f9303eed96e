import { EventEmitter } from "node:events";
import type Database from "better-sqlite3";
import type { TelemetryMessage } from "../mqtt/telemetry.js";
import { partitionOf, type StoredProperties, storedProperties } from "./message.js";

/** IoT Hub's default retention of the built-in endpoint: 1 day ("IoT Hub quotas and throttling"). */
export const DEFAULT_RETENTION_HOURS = 24;
/** Expired events are deleted this often. */
const PRUNE_EVERY_MS = 60_000;

export interface StoredEvent {
  partition: number;
  sequence: number;
  offset: number;
  enqueued: number;
  device: string;
  props: StoredProperties;
  body: Buffer;
}

export interface PartitionInfo {
  partition: number;
  /** The first sequence number still kept (the next one when the partition is empty). */
  beginSequence: number;
  lastSequence: number;
  lastOffset: number;
  lastEnqueued: number;
  empty: boolean;
}

interface Row {
  partition: number;
  sequence: number;
  offset: number;
  enqueued: number;
  device: string;
  props: string;
  body: Buffer;
}

const toEvent = (r: Row): StoredEvent => ({ ...r, props: JSON.parse(r.props) });

/**
 * The Event Hubs-compatible endpoint's storage: every device-to-cloud message, in order per partition, with
 * a sequence number (0, 1, 2... per partition) and an offset (the byte position of the event in its
 * partition, as Event Hubs counts it; opaque to readers). Appends are group-committed: all messages that
 * arrive in one turn of the event loop go in one transaction, and each `append` resolves once its message is
 * committed (so a QoS 1 PUBACK means stored). Emits `appended(partition)` after each commit.
 */
export class EventStore extends EventEmitter {
  readonly partitions: number;
  private readonly insert: Database.Statement;
  private readonly counters: Map<number, { nextSequence: number; nextOffset: number }>;
  private readonly saveCounter: Database.Statement;
  private readonly commitBatch: (batch: Array<{ row: Row }>) => void;
  private queue: Array<{ row: Row; resolve: () => void; reject: (e: Error) => void }> = [];
  private scheduled = false;
  private readonly pruneTimer: NodeJS.Timeout;

  constructor(
    db: Database.Database,
    options: { partitions: number; retentionHours: number; generationIdOf: (deviceId: string) => string },
  ) {
    super();
    this.setMaxListeners(0);
    this.generationIdOf = options.generationIdOf;
    this.retentionMs = options.retentionHours * 3600_000;
    const saved = db
      .prepare("SELECT partition, next_sequence, next_offset FROM event_partitions")
      .all() as Array<{
      partition: number;
      next_sequence: number;
      next_offset: number;
    }>;
    // The partition count is fixed when the endpoint is created, as on IoT Hub: a directory keeps its own.
    this.partitions = saved.length > 0 ? saved.length : options.partitions;
    this.counters = new Map();
    for (let p = 0; p < this.partitions; p++) {
      const s = saved.find((x) => x.partition === p);
      this.counters.set(p, { nextSequence: s?.next_sequence ?? 0, nextOffset: s?.next_offset ?? 0 });
    }
    this.saveCounter = db.prepare(
      "INSERT INTO event_partitions (partition, next_sequence, next_offset) VALUES (?, ?, ?) ON CONFLICT(partition) DO UPDATE SET next_sequence = excluded.next_sequence, next_offset = excluded.next_offset",
    );
    if (saved.length === 0) {
      db.transaction(() => {
        for (let p = 0; p < this.partitions; p++) this.saveCounter.run(p, 0, 0);
      })();
    }
    this.insert = db.prepare(
      "INSERT INTO events (partition, sequence, offset, enqueued, device, props, body) VALUES (@partition, @sequence, @offset, @enqueued, @device, @props, @body)",
    );
    this.commitBatch = db.transaction((batch: Array<{ row: Row }>) => {
      const touched = new Set<number>();
      for (const { row } of batch) {
        this.insert.run(row);
        touched.add(row.partition);
      }
      for (const p of touched) {
        const c = this.counters.get(p);
        if (c) this.saveCounter.run(p, c.nextSequence, c.nextOffset);
      }
    });
    this.selectFrom = db.prepare(
      "SELECT * FROM events WHERE partition = ? AND sequence >= ? ORDER BY sequence LIMIT ?",
    );
    this.firstAfterOffset = db.prepare(
      "SELECT sequence FROM events WHERE partition = ? AND offset > ? ORDER BY offset LIMIT 1",
    );
    this.firstAfterTime = db.prepare(
      "SELECT sequence FROM events WHERE partition = ? AND enqueued > ? ORDER BY sequence LIMIT 1",
    );
    this.firstSequence = db.prepare("SELECT MIN(sequence) FROM events WHERE partition = ?").pluck();
    this.lastRow = db.prepare(
      "SELECT sequence, offset, enqueued FROM events WHERE partition = ? ORDER BY sequence DESC LIMIT 1",
    );
    this.pruneStatement = db.prepare("DELETE FROM events WHERE enqueued < ?");
    this.prune();
    this.pruneTimer = setInterval(() => this.prune(), PRUNE_EVERY_MS);
    this.pruneTimer.unref();
  }

  private readonly generationIdOf: (deviceId: string) => string;
  private readonly retentionMs: number;
  private readonly selectFrom: Database.Statement;
  private readonly firstAfterOffset: Database.Statement;
  private readonly firstAfterTime: Database.Statement;
  private readonly firstSequence: Database.Statement;
  private readonly lastRow: Database.Statement;
  private readonly pruneStatement: Database.Statement;
  private lastEnqueued = 0;

  /** Stores one message; resolves once it is committed. */
  append(message: TelemetryMessage): Promise<void> {
    const partition = partitionOf(message.deviceId, this.partitions);
    const counter = this.counters.get(partition) as { nextSequence: number; nextOffset: number };
    // Enqueued times never go backwards, so "enqueued after T" and sequence order agree.
    const enqueued = Math.max(Date.now(), this.lastEnqueued);
    this.lastEnqueued = enqueued;
    const props = storedProperties(message, enqueued, this.generationIdOf(message.deviceId));
    const text = JSON.stringify(props);
    const row: Row = {
      partition,
      sequence: counter.nextSequence,
      offset: counter.nextOffset,
      enqueued,
      device: message.deviceId,
      props: text,
      body: message.body,
    };
    counter.nextSequence += 1;
    // The offset advances by the event's stored size, as Event Hubs offsets are byte positions.
    counter.nextOffset += message.body.length + Buffer.byteLength(text) + 64;
    return new Promise((resolve, reject) => {
      this.queue.push({ row, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits what is queued now (also called on close). */
  flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    try {
      this.commitBatch(batch);
    } catch (error) {
      for (const b of batch) b.reject(error as Error);
      return;
    }
    for (const b of batch) b.resolve();
    const touched = new Set(batch.map((b) => b.row.partition));
    for (const p of touched) this.emit("appended", p);
  }

  /** Up to `limit` events of `partition` from sequence number `from` on. */
  read(partition: number, from: number, limit: number): StoredEvent[] {
    return (this.selectFrom.all(partition, from, limit) as Row[]).map(toEvent);
  }

  /** The sequence number of the first event after `offset` (the next one to come when none is). */
  sequenceAfterOffset(partition: number, offset: number): number {
    const s = this.firstAfterOffset.pluck().get(partition, offset) as number | undefined;
    return s ?? this.nextSequence(partition);
  }

  /** The sequence number of the first event enqueued after `ms`. */
  sequenceAfterTime(partition: number, ms: number): number {
    const s = this.firstAfterTime.pluck().get(partition, ms) as number | undefined;
    return s ?? this.nextSequence(partition);
  }

  nextSequence(partition: number): number {
    return this.counters.get(partition)?.nextSequence ?? 0;
  }

  info(partition: number): PartitionInfo {
    const next = this.nextSequence(partition);
    const first = this.firstSequence.get(partition) as number | null;
    const last = this.lastRow.get(partition) as
      | { sequence: number; offset: number; enqueued: number }
      | undefined;
    return {
      partition,
      beginSequence: first ?? next,
      lastSequence: last?.sequence ?? next - 1,
      lastOffset: last?.offset ?? -1,
      lastEnqueued: last?.enqueued ?? 0,
      empty: last === undefined,
    };
  }

  /** Deletes events older than the retention. */
  prune(now = Date.now()): number {
    return this.pruneStatement.run(now - this.retentionMs).changes;
  }

  close(): void {
    clearInterval(this.pruneTimer);
    this.flush();
  }
}
