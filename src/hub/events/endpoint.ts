import type { Message, Sender } from "rhea";
import { serveRequests } from "../amqp/request-response.js";
import { type AmqpServer, refuse, rhea } from "../amqp/server.js";
import type { Authorizer } from "../auth/authorizer.js";
import { AMQP } from "../protocol.js";
import { parseSelector, selectorText } from "./selector.js";
import type { EventStore, StoredEvent } from "./store.js";

/** The consumer group every IoT Hub has ("Read device-to-cloud messages from the built-in endpoint"). */
export const DEFAULT_CONSUMER_GROUP = "$Default";
/** "Event Hubs quotas": at most 5 concurrent readers per partition per consumer group. */
export const MAX_READERS_PER_PARTITION = 5;
/** Events read from the database per step of a receiver's pump. */
const READ_BATCH = 100;

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

interface Reader {
  sender: Sender;
  epoch: number | undefined;
}

/**
 * The built-in Event Hubs-compatible endpoint ("Read device-to-cloud messages from the built-in endpoint"):
 * entity `<hub name>` on the AMQP port, read with any Event Hubs client. Links:
 * - `<hub>/ConsumerGroups/<group>/Partitions/<id>`: a receiver, positioned by its selector filter, gets the
 *   partition's events and then new ones as they arrive, as credit allows.
 * - `$management`: READ of `com.microsoft:eventhub` and `com.microsoft:partition` (the protocol guide's
 *   management operations).
 * Reading needs ServiceConnect ("Control access to IoT Hub": ServiceConnect "grants access to ... receive
 * device-to-cloud messages"), from a `$cbs` put-token whose audience covers the link.
 */
export function serveEvents(opts: {
  server: AmqpServer;
  authorizer: Authorizer;
  store: EventStore;
  /** The entity path (EntityPath of the connection string). */
  entity: string;
  /** Consumer groups besides $Default (names compared case-insensitively, as Event Hubs does). */
  consumerGroups: readonly string[];
  createdAt: Date;
  log: (line: string) => void;
}): { readonly readerCount: number } {
  const { server, authorizer, store, entity, log } = opts;
  const groups = new Set([DEFAULT_CONSUMER_GROUP, ...opts.consumerGroups].map((g) => g.toLowerCase()));
  const partitionIds = Array.from({ length: store.partitions }, (_, i) => String(i));
  /** Readers per "<group>/<partition>". */
  const readers = new Map<string, Set<Reader>>();
  let readerCount = 0;

  server.route(new RegExp(`^/?${escapeRegExp(entity)}/ConsumerGroups/([^/]+)/Partitions/([^/]+)$`, "i"), {
    outgoing(sender, { peer, address, match }) {
      const granted = peer.authorize(address, "ServiceConnect");
      if (!granted.ok) {
        log(`AMQP ${peer.id} receive from ${address} refused: ${granted.reason}`);
        return refuse(sender, AMQP.errors.unauthorized, granted.reason);
      }
      const group = decodeURIComponent(match[1]).toLowerCase();
      if (!groups.has(group)) {
        return refuse(
          sender,
          AMQP.errors.notFound,
          `The messaging entity '${entity}/ConsumerGroups/${match[1]}' could not be found: create the consumer group (local-hub --consumer-group ${match[1]})`,
        );
      }
      const partition = Number(match[2]);
      if (!/^\d+$/.test(match[2]) || partition >= store.partitions) {
        return refuse(
          sender,
          AMQP.errors.argumentOutOfRange,
          `The specified partition is invalid for an EventHub partition sender or receiver. It should be between 0 and ${store.partitions - 1}.`,
        );
      }
      const text = selectorText(sender.source?.filter);
      const position = text === null ? undefined : parseSelector(text);
      if (!position) {
        return refuse(
          sender,
          AMQP.errors.argument,
          "unsupported filter: use a selector on amqp.annotation.x-opt-offset, x-opt-sequence-number or x-opt-enqueued-time",
        );
      }
      const epochValue = (sender.properties as Record<string, unknown> | undefined)?.[AMQP.epochProperty];
      const epoch = epochValue === undefined || epochValue === null ? undefined : Number(epochValue);

      // Epochs ("Event Hubs: epoch receivers", ownerLevel in the SDKs): a reader with an epoch takes the
      // partition of its consumer group from readers with a lower or no epoch; a lower one is refused.
      const key = `${group}/${partition}`;
      const set = readers.get(key) ?? new Set<Reader>();
      readers.set(key, set);
      const epochs = [...set].map((r) => r.epoch).filter((e): e is number => e !== undefined);
      const highest = epochs.length ? Math.max(...epochs) : undefined;
      if (highest !== undefined && (epoch === undefined || epoch < highest)) {
        return refuse(
          sender,
          AMQP.errors.stolen,
          `Receiver with higher epoch of '${highest}' already exists; this one (epoch ${epoch ?? "none"}) cannot read`,
        );
      }
      if (epoch !== undefined) {
        for (const r of [...set]) {
          set.delete(r);
          refuse(
            r.sender,
            AMQP.errors.stolen,
            `New receiver with higher epoch of '${epoch}' is created hence current receiver with epoch '${r.epoch ?? "none"}' is getting disconnected`,
          );
        }
      }
      if (set.size >= MAX_READERS_PER_PARTITION) {
        return refuse(
          sender,
          AMQP.errors.resourceLimit,
          `Exceeded the maximum number of allowed receivers per partition in a consumer group which is ${MAX_READERS_PER_PARTITION}`,
        );
      }
      // Detached with amqp:unauthorized-access if its token expires and no renewed one is put.
      peer.keepAuthorized(sender, address, "ServiceConnect");
      const reader: Reader = { sender, epoch };
      set.add(reader);
      readerCount++;

      let next = startSequence(store, partition, position);
      // trackLastEnqueuedEventProperties in the SDKs: each delivery carries the partition's last event.
      const metrics = ([] as unknown[])
        .concat(sender.desired_capabilities ?? [])
        .map(String)
        .includes(AMQP.receiverRuntimeMetric);
      const pump = () => {
        try {
          while (sender.is_open() && sender.sendable()) {
            // A client may grant any credit and not read: stop at the connection's output limit.
            if (peer.backlogged()) return peer.whenDrained(pump);
            const batch = store.read(
              partition,
              next,
              Math.min(READ_BATCH, Math.max(1, (sender as unknown as { credit: number }).credit)),
            );
            if (batch.length === 0) return;
            const info = metrics ? store.info(partition) : undefined;
            for (const event of batch) {
              if (!sender.sendable()) return;
              sender.send(toAmqp(event, info));
              next = event.sequence + 1;
            }
          }
        } catch (error) {
          log(`AMQP ${peer.id} reading ${address} failed: ${(error as Error)?.stack ?? error}`);
          refuse(sender, AMQP.errors.internal, "hub error");
        }
      };
      const onAppended = (p: number) => {
        if (p === partition) pump();
      };
      store.on("appended", onAppended);
      sender.on("sendable", pump);
      const done = () => {
        store.off("appended", onAppended);
        if (set.delete(reader)) readerCount--;
      };
      sender.on("sender_close", done);
      sender.on("sender_error", done);
      peer.connection.once("disconnected", done);
      peer.connection.once("connection_close", done);
      log(`AMQP ${peer.id} reading ${address} from sequence number ${next} as ${granted.name}`);
      pump();
    },
  });

  // $management: the entity's and each partition's runtime information.
  serveRequests(server, /^\/?\$management$/i, (request: Message, peer) => {
    const props = (request.application_properties ?? {}) as Record<string, unknown>;
    let granted = peer.authorize(`/${entity}`, "ServiceConnect");
    // The SDKs also carry the token in the request (security_token); it counts for this request.
    if (!granted.ok && typeof props.security_token === "string") {
      const claim = authorizer.claim(props.security_token);
      if (claim.ok && claim.permissions.includes("ServiceConnect"))
        granted = { ok: true, name: claim.name, expiresAt: claim.expiresAt };
    }
    if (!granted.ok) return { status: 401, description: granted.reason };
    if (props.operation !== AMQP.readOperation)
      return { status: 400, description: `unsupported operation '${String(props.operation)}': use READ` };
    if (String(props.name ?? "").toLowerCase() !== entity.toLowerCase())
      return { status: 404, description: `The messaging entity '${String(props.name)}' could not be found` };
    if (props.type === AMQP.eventHubType) {
      return {
        status: 200,
        description: "OK",
        body: {
          name: entity,
          type: AMQP.eventHubType,
          created_at: opts.createdAt,
          partition_count: store.partitions,
          partition_ids: partitionIds,
        },
      };
    }
    if (props.type === AMQP.partitionType) {
      const id = String(props.partition ?? "");
      if (!partitionIds.includes(id))
        return {
          status: 400,
          description: `The specified partition is invalid. It should be between 0 and ${store.partitions - 1}.`,
        };
      const info = store.info(Number(id));
      return {
        status: 200,
        description: "OK",
        body: {
          name: entity,
          type: AMQP.partitionType,
          partition: id,
          begin_sequence_number: rhea().types.wrap_long(info.beginSequence),
          last_enqueued_sequence_number: rhea().types.wrap_long(info.lastSequence),
          last_enqueued_offset: String(info.lastOffset),
          last_enqueued_time_utc: new Date(info.lastEnqueued),
          is_partition_empty: info.empty,
        },
      };
    }
    return { status: 400, description: `unsupported type '${String(props.type)}'` };
  });

  return {
    get readerCount() {
      return readerCount;
    },
  };
}

function startSequence(
  store: EventStore,
  partition: number,
  position: NonNullable<ReturnType<typeof parseSelector>>,
): number {
  switch (position.kind) {
    case "latest":
      return store.nextSequence(partition);
    case "offset":
      // The first event whose offset is after (or at, inclusive) the given one.
      return store.sequenceAfterOffset(partition, position.inclusive ? position.offset - 1 : position.offset);
    case "sequence":
      return Math.max(0, position.inclusive ? position.sequence : position.sequence + 1);
    case "enqueued":
      return store.sequenceAfterTime(partition, position.inclusive ? position.ms - 1 : position.ms);
  }
}

/** An event as an Event Hubs reader receives it: IoT Hub's properties plus the x-opt-* annotations. */
function toAmqp(event: StoredEvent, info: ReturnType<EventStore["info"]> | undefined): Message {
  const { p, a, ap } = event.props;
  const annotations: Record<string, unknown> = {
    ...a,
    "iothub-enqueuedtime": new Date(event.enqueued),
    [AMQP.annotations.sequenceNumber]: rhea().types.wrap_long(event.sequence),
    [AMQP.annotations.offset]: String(event.offset),
    [AMQP.annotations.enqueuedTime]: new Date(event.enqueued),
  };
  const message: Message = {
    message_annotations: annotations,
    application_properties: ap,
    body: rhea().message.data_section(event.body),
  };
  if (p.message_id !== undefined) message.message_id = p.message_id;
  if (p.correlation_id !== undefined) message.correlation_id = p.correlation_id;
  if (p.user_id !== undefined) message.user_id = Buffer.from(p.user_id, "utf8") as unknown as string;
  if (p.to !== undefined) message.to = p.to;
  if (p.absolute_expiry_time !== undefined) message.absolute_expiry_time = new Date(p.absolute_expiry_time);
  if (p.content_type !== undefined) message.content_type = p.content_type;
  if (p.content_encoding !== undefined) message.content_encoding = p.content_encoding;
  if (info) {
    // With the receiver runtime metric capability: the partition's last event, per delivery.
    message.delivery_annotations = {
      last_enqueued_sequence_number: rhea().types.wrap_long(info.lastSequence),
      last_enqueued_offset: String(info.lastOffset),
      last_enqueued_time_utc: new Date(info.lastEnqueued),
      runtime_info_retrieval_time_utc: new Date(),
    };
  }
  return message;
}
