import type { FastifyInstance, FastifyReply } from "fastify";
import { HEADERS } from "../protocol.js";
import type { DeviceRegistry } from "../registry/registry.js";
import { twinChangeOf } from "../twin/body.js";
import type { TwinDocument } from "../twin/types.js";
import { type IdParams, ifMatchOf, NEEDS } from "./wire.js";

/** Twin routes ("Service - Devices: Get Twin / Update Twin / Replace Twin", 2021-04-12). */
export function twinsRoutes(registry: DeviceRegistry) {
  return async (app: FastifyInstance) => {
    app.get<IdParams>("/twins/:id", NEEDS.serviceConnect, async (req, reply) =>
      twinReply(reply, registry.twins.twin(req.params.id)),
    );
    app.patch<IdParams>("/twins/:id", NEEDS.serviceConnect, async (req, reply) =>
      twinReply(
        reply,
        registry.twins.changeTwin(req.params.id, twinChangeOf(req.body, false), ifMatchOf(req)),
      ),
    );
    app.put<IdParams>("/twins/:id", NEEDS.serviceConnect, async (req, reply) =>
      twinReply(
        reply,
        registry.twins.changeTwin(req.params.id, twinChangeOf(req.body, true), ifMatchOf(req)),
      ),
    );
  };
}

function twinReply(reply: FastifyReply, twin: TwinDocument) {
  reply.header(HEADERS.etag, `"${twin.etag}"`);
  return twin;
}
