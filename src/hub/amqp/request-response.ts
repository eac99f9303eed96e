import type { Message, Receiver, Sender } from "rhea";
import { AMQP } from "../protocol.js";
import { type AmqpPeer, type AmqpServer, refuse } from "./server.js";

/** Answers a request/response node lets wait for credit on one reply link before it detaches the requests. */
const MAX_UNANSWERED = 100;

export interface Reply {
  status: number;
  description: string;
  body?: unknown;
}

/**
 * A request/response node as the AMQP management and claims-based-security drafts define it (used by `$cbs`
 * and `$management`): the client sends requests to the node on one link, attaches a receiver whose source is
 * the node and whose target is its `reply_to` address, and gets each answer there with `correlation_id` =
 * the request's `message_id` and `status-code`/`status-description` application properties.
 */
export function serveRequests(
  server: AmqpServer,
  pattern: RegExp,
  answer: (request: Message, peer: AmqpPeer, address: string) => Reply,
): void {
  /** Answers queued on a reply link beyond its credit. */
  const unanswered = new WeakMap<Sender, number>();
  /** Per connection: the reply links by their target address. */
  const replyLinks = new WeakMap<AmqpPeer, Map<string, Sender>>();
  server.route(pattern, {
    outgoing(sender, { peer }) {
      const links = replyLinks.get(peer) ?? new Map<string, Sender>();
      replyLinks.set(peer, links);
      const target = String(sender.target?.address ?? "");
      // Bounded per connection: a client attaching reply links without end replaces the oldest.
      if (links.size >= 100 && !links.has(target)) links.delete(links.keys().next().value as string);
      links.set(target, sender);
      const drop = () => {
        if (links.get(target) === sender) links.delete(target);
      };
      sender.on("sender_close", drop);
    },
    incoming(receiver: Receiver, { peer, address }) {
      receiver.on("message", (ctx) => {
        const request = ctx.message as Message;
        let reply: Reply;
        try {
          reply = answer(request, peer, address);
        } catch {
          reply = { status: 500, description: "hub error" };
        }
        const links = replyLinks.get(peer);
        const to = request.reply_to === undefined ? undefined : String(request.reply_to);
        const link = (to !== undefined ? links?.get(to) : undefined) ?? links?.values().next().value;
        // No reply link: nowhere to answer, as the drafts say; the request is still settled.
        if (!link?.is_open()) return;
        // rhea queues what a link has no credit for; a client that asks without ever granting credit on its
        // reply link (or reading) is stopped before that queue grows.
        if (!link.sendable() || peer.backlogged()) {
          const waiting = (unanswered.get(link) ?? 0) + 1;
          unanswered.set(link, waiting);
          if (waiting > MAX_UNANSWERED) {
            refuse(
              receiver,
              AMQP.errors.resourceLimit,
              `more than ${MAX_UNANSWERED} answers wait for credit on the reply link: grant credit and read them`,
            );
            return;
          }
        } else unanswered.delete(link);
        link.send({
          correlation_id: request.message_id ?? request.correlation_id,
          to,
          application_properties: { "status-code": reply.status, "status-description": reply.description },
          body: reply.body,
        });
      });
    },
  });
}
