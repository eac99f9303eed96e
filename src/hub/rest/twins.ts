import type { FastifyInstance, FastifyReply } from "fastify";
import { HEADERS } from "../protocol.js";
import type { DeviceRegistry } from "../registry.js";
import type { TwinDocument } from "../twin/types.js";
import { type IdParams, ifMatchOf, NEEDS } from "./wire.js";

/** Twin routes ("Service - Devices: Get Twin / Update Twin / Replace Twin", 2021-04-12). */
export function twinsRoutes(registry: DeviceRegistry) {
  return async (app: FastifyInstance) => {
    app.get<IdParams>("/twins/:id", NEEDS.serviceConnect, async (req, reply) =>
      twinReply(reply, registry.twin(req.params.id)),
    );
    app.patch<IdParams>("/twins/:id", NEEDS.serviceConnect, async (req, reply) =>
      twinReply(reply, registry.updateTwin(req.params.id, req.body, ifMatchOf(req), false)),
    );
    app.put<IdParams>("/twins/:id", NEEDS.serviceConnect, async (req, reply) =>
      twinReply(reply, registry.updateTwin(req.params.id, req.body, ifMatchOf(req), true)),
    );
  };
}

function twinReply(reply: FastifyReply, twin: TwinDocument) {
  reply.header(HEADERS.etag, `"${twin.etag}"`);
  return twin;
}
