import type { ChannelEvents, MessageChannel } from "./channel.js";
import type { FeedbackQueue } from "./feedback.js";
import { type AckMode, type C2dProperties, deviceboundTopic } from "./message.js";
import type { C2dStore, FeedbackRecord, QueuedMessage } from "./store.js";

/** "Each device queue holds, at most, 50 cloud-to-device messages" ("Send cloud-to-device messages from an IoT hub"). */
export const MAX_QUEUE_DEPTH = 50;
/** "defaultTtlAsIso8601 ... up to two days (minimum one minute); default: one hour" (configuration options). */
export const DEFAULT_TTL_MS = 3600_000;
export const MAX_TTL_MS = 48 * 3600_000;
/** "The length of this timeout is one minute and can't be changed" (the visibility, or lock, timeout). */
export const LOCK_TIMEOUT_MS = 60_000;
/** How often expiries are looked for. */
const SWEEP_MS = 250;

export interface QueueOptions {
  /** Test hook: a shorter lock timeout than IoT Hub's fixed minute. */
  lockTimeoutMs?: number;
  defaultTtlMs?: number;
}

interface Entry extends QueuedMessage {
  /** Enqueued: waiting to be sent; invisible: sent, locked until acknowledged or the lock times out. */
  state: "enqueued" | "invisible";
  /** In the database: only then is it sent. */
  committed: boolean;
  /** The current lock; an acknowledgement for an older lock is ignored. */
  lock?: object;
  lockTimer?: NodeJS.Timeout;
}

/**
 * The per-device queues ("Send cloud-to-device messages from an IoT hub", the message life cycle): a message is
 * *Enqueued* when accepted; sending it to the device locks it (*Invisible*); the device's acknowledgement
 * *completes* it and it leaves the queue. "A thread could fail to process a message without notifying the IoT
 * hub. In this case, messages automatically transition from the Invisible state back to the Enqueued state
 * after a visibility timeout (or lock timeout). The length of this timeout is one minute": a message sent on a
 * connection that ends before its PUBACK is sent again once its lock times out, on whichever connection of the
 * device then receives. "If the lock expires, the message returns to Enqueued but the delivery count does not
 * increment": only an explicit abandon counts towards the max delivery count, and MQTT devices cannot abandon
 * ("Devices that connect over the MQTT protocol can't abandon cloud-to-device messages"), so over MQTT a message
 * goes round until it expires. "The IoT hub also sets a message to Dead lettered after its expiration time":
 * an expired message is never sent, and leaves the queue with feedback `Expired` when asked for. A message sent
 * before the receiving session subscribed is rejected (see `ready`), with feedback `Rejected`.
 *
 * The queues and their order are kept in the database (store.ts); locks are not: after a restart every message
 * is Enqueued again (no connection survives a restart anyway).
 */
export class CloudToDeviceQueue implements ChannelEvents {
  private readonly queues = new Map<string, Entry[]>();
  private readonly sweeper: NodeJS.Timeout;
  private nextExpiry = Number.POSITIVE_INFINITY;
  private readonly lockTimeoutMs: number;
  readonly defaultTtlMs: number;
  private closed = false;

  constructor(
    private readonly store: C2dStore,
    private readonly feedback: FeedbackQueue,
    private readonly channel: () => MessageChannel | undefined,
    private readonly generationIdOf: (deviceId: string) => string,
    private readonly log: (line: string) => void,
    options: QueueOptions = {},
  ) {
    this.lockTimeoutMs = options.lockTimeoutMs ?? LOCK_TIMEOUT_MS;
    this.defaultTtlMs = options.defaultTtlMs ?? DEFAULT_TTL_MS;
    for (const m of store.loadMessages()) this.insert({ ...m, state: "enqueued", committed: true });
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  /** Messages pending for the device (enqueued or locked): the twin's `cloudToDeviceMessageCount`. */
  depth(deviceId: string): number {
    return this.queues.get(deviceId)?.length ?? 0;
  }

  get totalDepth(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  /**
   * Accepts a message for `deviceId` (already checked to exist): "full" when its queue already holds
   * MAX_QUEUE_DEPTH messages, else a promise settled once the message is stored.
   */
  enqueue(
    deviceId: string,
    props: C2dProperties,
    ack: AckMode,
    body: Buffer,
    now = Date.now(),
  ): "full" | Promise<void> {
    if (this.depth(deviceId) >= MAX_QUEUE_DEPTH) return "full";
    // The service's ExpiryTimeUtc, else the hub's default time to live; never beyond the two-day maximum.
    const expires = Math.min(props.expiry ?? now + this.defaultTtlMs, now + MAX_TTL_MS);
    const entry: Entry = {
      seq: this.store.newSeq(),
      device: deviceId,
      enqueued: now,
      expires,
      ack,
      props,
      state: "enqueued",
      committed: false,
    };
    this.insert(entry);
    return this.store.write({ kind: "enqueue", message: entry, body }).then(
      () => {
        entry.committed = true;
        this.ready(deviceId);
      },
      (error: unknown) => {
        this.drop(entry);
        throw error;
      },
    );
  }

  /** Sends what the device's receiving connection can take now. */
  ready(deviceId: string): void {
    if (this.closed) return;
    const queue = this.queues.get(deviceId);
    if (!queue) return;
    const receiver = this.channel()?.receiver(deviceId);
    if (!receiver) return;
    const now = Date.now();
    for (const entry of [...queue]) {
      if (entry.state !== "enqueued" || !entry.committed) continue;
      if (entry.expires <= now) {
        this.deadLetter(entry, "Expired", now);
        continue;
      }
      // The device "receives cloud-to-device messages that were sent to it after the time of the subscription"
      // (the MQTT doc); IoT Hub's MQTT gateway rejects an older message when a connection would get it
      // (`TryMatchSubscription` compares the subscription's creation time with the message's).
      if (entry.enqueued < receiver.subscribedAt) {
        this.deadLetter(entry, "Rejected", now);
        continue;
      }
      const body = this.store.body(entry.seq);
      if (body === undefined) {
        // Gone from the database (it cannot be sent): drop it from memory as well.
        this.drop(entry);
        continue;
      }
      const lock = {};
      const sent = receiver.send(deviceboundTopic(deviceId, entry.props), body, () =>
        this.acked(entry, lock),
      );
      if (!sent) return;
      entry.state = "invisible";
      entry.lock = lock;
      entry.lockTimer = setTimeout(() => this.lockExpired(entry, lock), this.lockTimeoutMs);
      entry.lockTimer.unref();
    }
  }

  /** The device's queue is gone with the device ("When a device is deleted, any pending feedback is deleted as well"). */
  purgeDevice(deviceId: string): void {
    const queue = this.queues.get(deviceId);
    if (queue) for (const entry of [...queue]) this.drop(entry, true);
    this.feedback.dropDevice(deviceId);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const q of this.queues.values()) for (const e of q) clearTimeout(e.lockTimer);
    this.store.close();
  }

  /** The device acknowledged: *Completed*, the message leaves the queue (feedback `Success` when asked for). */
  private acked(entry: Entry, lock: object): void {
    if (entry.lock !== lock || entry.state !== "invisible") return;
    const now = Date.now();
    this.remove(entry);
    if (entry.ack === "positive" || entry.ack === "full")
      this.feedback.add(this.record(entry, "Success", now));
    this.ready(entry.device);
  }

  private lockExpired(entry: Entry, lock: object): void {
    if (entry.lock !== lock) return;
    entry.state = "enqueued";
    entry.lock = undefined;
    entry.lockTimer = undefined;
    this.ready(entry.device);
  }

  /** *Dead lettered*: out of the queue, with feedback for `negative` and `full`. */
  private deadLetter(entry: Entry, status: "Expired" | "Rejected", now: number): void {
    this.remove(entry);
    const why = status === "Expired" ? "expired" : "rejected: sent before the device subscribed";
    this.log(`cloud-to-device message ${entry.props.messageId ?? `#${entry.seq}`} to ${entry.device} ${why}`);
    if (entry.ack === "negative" || entry.ack === "full") this.feedback.add(this.record(entry, status, now));
  }

  private record(entry: Entry, statusCode: FeedbackRecord["statusCode"], now: number): FeedbackRecord {
    return {
      originalMessageId: entry.props.messageId ?? "",
      enqueuedTimeUtc: new Date(now).toISOString(),
      statusCode,
      description:
        statusCode === "Expired"
          ? "Message Expired"
          : statusCode === "Rejected"
            ? "Message Rejected"
            : statusCode,
      deviceId: entry.device,
      deviceGenerationId: this.generationIdOf(entry.device),
    };
  }

  private sweep(): void {
    const now = Date.now();
    if (now < this.nextExpiry) return;
    let next = Number.POSITIVE_INFINITY;
    for (const queue of [...this.queues.values()]) {
      for (const entry of [...queue]) {
        if (!entry.committed) {
          next = Math.min(next, entry.expires);
          continue;
        }
        if (entry.expires <= now) this.deadLetter(entry, "Expired", now);
        else next = Math.min(next, entry.expires);
      }
    }
    this.nextExpiry = next;
  }

  private insert(entry: Entry): void {
    const queue = this.queues.get(entry.device);
    if (queue) queue.push(entry);
    else this.queues.set(entry.device, [entry]);
    this.nextExpiry = Math.min(this.nextExpiry, entry.expires);
  }

  /** Out of memory and (durably, group-committed) out of the database. */
  private remove(entry: Entry): void {
    this.drop(entry, true);
  }

  private drop(entry: Entry, fromStore = false): void {
    clearTimeout(entry.lockTimer);
    entry.lock = undefined;
    const queue = this.queues.get(entry.device);
    if (!queue) return;
    const i = queue.indexOf(entry);
    if (i < 0) return;
    queue.splice(i, 1);
    if (queue.length === 0) this.queues.delete(entry.device);
    if (fromStore) {
      this.store.write({ kind: "remove", seq: entry.seq }).catch((error: unknown) => {
        this.log(`cloud-to-device: removing a message from the store failed: ${(error as Error)?.message}`);
      });
    }
  }
}
