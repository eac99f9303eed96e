import { randomUUID } from "node:crypto";
import type { Delivery, EventContext, Sender } from "rhea";
import type { AmqpPeer } from "../amqp/server.js";
import { rhea } from "../amqp/server.js";
import { AMQP } from "../protocol.js";
import type { C2dStore, FeedbackRecord, StoredFeedback } from "./store.js";

/** "The system sends out the feedback either when the batch reaches to 64 messages, or in 15 seconds from last sent". */
export const FEEDBACK_BATCH = 64;
export const FEEDBACK_INTERVAL_MS = 15_000;
/** "feedback.ttlAsIso8601: Retention for service-bound feedback messages ... default: one hour". */
export const FEEDBACK_TTL_MS = 3600_000;
/** Records kept unread at most; beyond, the oldest go (the hub's own bound; IoT Hub documents none). */
export const MAX_FEEDBACK_RECORDS = 10_000;

interface Reader {
  sender: Sender;
  peer: AmqpPeer;
  /** Batches sent on this link and not yet settled by the service. */
  unsettled: Map<Delivery, StoredFeedback[]>;
}

/**
 * The feedback queue ("Send cloud-to-device messages from an IoT hub", message feedback): records are stored
 * durably when an outcome happens and read from `/messages/servicebound/feedback`, batched into messages of
 * up to FEEDBACK_BATCH records. "The semantics for receiving feedback are the same as for cloud-to-device
 * messages": a batch leaves the queue when the service accepts it (azure-iothub's receiver accepts each one),
 * goes back for another reader if released or if the link ends unsettled, and is dropped if rejected.
 */
export class FeedbackQueue {
  private pending: StoredFeedback[] = [];
  private readonly readers = new Set<Reader>();
  private lastSent = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly store: C2dStore,
    private readonly opts: { hubName: string; intervalMs?: number; log: (line: string) => void },
  ) {
    const now = Date.now();
    for (const f of store.loadFeedback()) {
      if (f.created + FEEDBACK_TTL_MS <= now) this.forget(f);
      else this.pending.push(f);
    }
    this.sweeper = setInterval(() => this.expire(), 10_000);
    this.sweeper.unref();
  }

  get unread(): number {
    let n = this.pending.length;
    for (const r of this.readers) for (const b of r.unsettled.values()) n += b.length;
    return n;
  }

  /** Stores a record; it becomes readable once committed. */
  add(record: FeedbackRecord): void {
    const feedback: StoredFeedback = { seq: this.store.newFeedbackSeq(), created: Date.now(), record };
    this.store.write({ kind: "feedback", feedback }).then(
      () => {
        this.pending.push(feedback);
        while (this.pending.length > MAX_FEEDBACK_RECORDS) {
          const dropped = this.pending.shift() as StoredFeedback;
          this.opts.log(
            `feedback for ${dropped.record.deviceId} dropped unread: more than ${MAX_FEEDBACK_RECORDS} records wait`,
          );
          this.forget(dropped);
        }
        this.schedule();
      },
      (error: unknown) => this.opts.log(`storing feedback failed: ${(error as Error)?.message}`),
    );
  }

  /** A deleted device's unread feedback goes with it. */
  dropDevice(deviceId: string): void {
    const [gone, kept] = partition(this.pending, (f) => f.record.deviceId === deviceId);
    this.pending = kept;
    for (const f of gone) this.forget(f);
  }

  /** A service's receiver link on the feedback node. */
  attach(sender: Sender, peer: AmqpPeer): void {
    const reader: Reader = { sender, peer, unsettled: new Map() };
    this.readers.add(reader);
    const settle = (outcome: "accepted" | "rejected" | "released") => (ctx: EventContext) => {
      const delivery = ctx.delivery as Delivery;
      const batch = reader.unsettled.get(delivery);
      if (!batch) return;
      reader.unsettled.delete(delivery);
      if (outcome === "released") this.requeue(batch);
      else for (const f of batch) this.forget(f);
      this.schedule();
    };
    sender.on("accepted", settle("accepted"));
    sender.on("rejected", settle("rejected"));
    sender.on("released", settle("released"));
    sender.on("modified", settle("released"));
    sender.on("sendable", () => this.schedule());
    const detach = () => {
      if (!this.readers.delete(reader)) return;
      for (const batch of reader.unsettled.values()) this.requeue(batch);
      reader.unsettled.clear();
      this.schedule();
    };
    sender.on("sender_close", detach);
    sender.on("sender_error", detach);
    peer.connection.once("disconnected", detach);
    peer.connection.once("connection_close", detach);
    this.schedule();
  }

  close(): void {
    clearTimeout(this.timer);
    clearInterval(this.sweeper);
  }

  /** Sends now if a full batch waits or the interval since the last batch has passed; else sets a timer. */
  private schedule(): void {
    if (this.pending.length === 0) return;
    const due = this.lastSent + (this.opts.intervalMs ?? FEEDBACK_INTERVAL_MS);
    const now = Date.now();
    if (this.pending.length >= FEEDBACK_BATCH || now >= due) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.send();
      return;
    }
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.schedule();
      }, due - now);
      this.timer.unref();
    }
  }

  private send(): void {
    for (const reader of this.readers) {
      while (this.pending.length > 0 && reader.sender.is_open() && reader.sender.sendable()) {
        if (reader.peer.backlogged()) {
          reader.peer.whenDrained(() => this.schedule());
          break;
        }
        const batch = this.pending.splice(0, FEEDBACK_BATCH);
        const delivery = reader.sender.send({
          message_id: randomUUID(),
          // "UserId: {iot hub name}"; "ContentType: application/vnd.microsoft.iothub.feedback.json".
          user_id: Buffer.from(this.opts.hubName, "utf8") as unknown as string,
          content_type: AMQP.feedbackContentType,
          message_annotations: { "iothub-enqueuedtime": new Date() },
          body: rhea().message.data_section(Buffer.from(JSON.stringify(batch.map((f) => f.record)), "utf8")),
        });
        reader.unsettled.set(delivery, batch);
        this.lastSent = Date.now();
      }
      if (this.pending.length === 0) return;
    }
  }

  private requeue(batch: StoredFeedback[]): void {
    this.pending = [...batch, ...this.pending].sort((a, b) => a.seq - b.seq);
  }

  private forget(f: StoredFeedback): void {
    this.store.write({ kind: "dropFeedback", seq: f.seq }).catch(() => {});
  }

  private expire(): void {
    const cutoff = Date.now() - FEEDBACK_TTL_MS;
    const [gone, kept] = partition(this.pending, (f) => f.created <= cutoff);
    this.pending = kept;
    for (const f of gone) this.forget(f);
  }
}

function partition<T>(items: T[], test: (item: T) => boolean): [T[], T[]] {
  const yes: T[] = [];
  const no: T[] = [];
  for (const item of items) (test(item) ? yes : no).push(item);
  return [yes, no];
}
