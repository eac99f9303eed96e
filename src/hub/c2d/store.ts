import type Database from "better-sqlite3";
import type { AckMode, C2dProperties } from "./message.js";

/** One queued cloud-to-device message, without its body (read when it is sent). */
export interface QueuedMessage {
  seq: number;
  device: string;
  enqueued: number;
  expires: number;
  ack: AckMode;
  props: C2dProperties;
}

/** A stored feedback record and when it was made. */
export interface StoredFeedback {
  seq: number;
  created: number;
  record: FeedbackRecord;
}

/**
 * One record of a feedback message's body ("Send cloud-to-device messages from an IoT hub", message feedback:
 * "The body is a JSON-serialized array of records, each with the following properties").
 */
export interface FeedbackRecord {
  originalMessageId: string;
  enqueuedTimeUtc: string;
  statusCode: "Success" | "Expired" | "DeliveryCountExceeded" | "Rejected" | "Purged";
  description: string;
  deviceId: string;
  deviceGenerationId: string;
}

type Op =
  | { kind: "enqueue"; message: QueuedMessage; body: Buffer }
  | { kind: "remove"; seq: number }
  | { kind: "feedback"; feedback: StoredFeedback }
  | { kind: "dropFeedback"; seq: number };

/**
 * The durable side of cloud-to-device messaging: the device queues and the feedback records, in the hub's
 * SQLite database (tables of migration 3). Writes are group-committed like the Event Hubs store: every change
 * made in one turn of the event loop goes in one transaction, and each `write` resolves once it is committed.
 * An accepted message is therefore stored before the service hears "accepted", and a message is delivered only
 * once committed.
 */
export class C2dStore {
  private readonly insertMessage: Database.Statement;
  private readonly deleteMessage: Database.Statement;
  private readonly insertFeedback: Database.Statement;
  private readonly deleteFeedback: Database.Statement;
  private readonly selectBody: Database.Statement;
  private readonly commitOps: (ops: Op[]) => void;
  private pending: Array<{ op: Op; resolve: () => void; reject: (e: Error) => void }> = [];
  private scheduled = false;
  private closed = false;
  private nextSeq: number;
  private nextFeedbackSeq: number;

  constructor(private readonly db: Database.Database) {
    this.insertMessage = db.prepare(
      "INSERT INTO c2d_messages (seq, device, enqueued, expires, ack, props, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    this.deleteMessage = db.prepare("DELETE FROM c2d_messages WHERE seq = ?");
    this.insertFeedback = db.prepare("INSERT INTO c2d_feedback (seq, created, record) VALUES (?, ?, ?)");
    this.deleteFeedback = db.prepare("DELETE FROM c2d_feedback WHERE seq = ?");
    this.selectBody = db.prepare("SELECT body FROM c2d_messages WHERE seq = ?").pluck();
    this.commitOps = db.transaction((ops: Op[]) => {
      for (const op of ops) {
        switch (op.kind) {
          case "enqueue": {
            const m = op.message;
            this.insertMessage.run(
              m.seq,
              m.device,
              m.enqueued,
              m.expires,
              m.ack,
              JSON.stringify(m.props),
              op.body,
            );
            break;
          }
          case "remove":
            this.deleteMessage.run(op.seq);
            break;
          case "feedback":
            this.insertFeedback.run(op.feedback.seq, op.feedback.created, JSON.stringify(op.feedback.record));
            break;
          case "dropFeedback":
            this.deleteFeedback.run(op.seq);
            break;
        }
      }
    });
    this.nextSeq =
      ((db.prepare("SELECT MAX(seq) FROM c2d_messages").pluck().get() as number | null) ?? 0) + 1;
    this.nextFeedbackSeq =
      ((db.prepare("SELECT MAX(seq) FROM c2d_feedback").pluck().get() as number | null) ?? 0) + 1;
  }

  /** Every queued message, in the order they were accepted. */
  loadMessages(): QueuedMessage[] {
    const rows = this.db
      .prepare("SELECT seq, device, enqueued, expires, ack, props FROM c2d_messages ORDER BY seq")
      .all() as Array<Omit<QueuedMessage, "props"> & { props: string }>;
    return rows.map((r) => ({ ...r, props: JSON.parse(r.props) as C2dProperties }));
  }

  loadFeedback(): StoredFeedback[] {
    const rows = this.db
      .prepare("SELECT seq, created, record FROM c2d_feedback ORDER BY seq")
      .all() as Array<{
      seq: number;
      created: number;
      record: string;
    }>;
    return rows.map((r) => ({
      seq: r.seq,
      created: r.created,
      record: JSON.parse(r.record) as FeedbackRecord,
    }));
  }

  newSeq(): number {
    return this.nextSeq++;
  }

  newFeedbackSeq(): number {
    return this.nextFeedbackSeq++;
  }

  body(seq: number): Buffer | undefined {
    return this.selectBody.get(seq) as Buffer | undefined;
  }

  /**
   * Queues a change for the group commit; resolves once it is in the database. After `close` (a device's
   * acknowledgement arriving while the hub stops) nothing is written and the promise never settles: the message
   * stays queued and is delivered again after the restart.
   */
  write(op: Op): Promise<void> {
    if (this.closed) return new Promise(() => {});
    return new Promise((resolve, reject) => {
      this.pending.push({ op, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits what is queued and takes no more writes (the hub is stopping). */
  close(): void {
    this.flush();
    this.closed = true;
  }

  /** Commits what is queued now. */
  flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    try {
      this.commitOps(batch.map((b) => b.op));
    } catch (error) {
      for (const b of batch) b.reject(error as Error);
      return;
    }
    for (const b of batch) b.resolve();
  }
}
