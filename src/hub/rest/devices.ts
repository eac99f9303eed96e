import type { FastifyInstance } from "fastify";
import { parseBulk, runBulk } from "../bulk.js";
import { errors } from "../errors.js";
import type { IdentityInput } from "../registry/identity-fields.js";
import type { DeviceRegistry } from "../registry/registry.js";
import { type DeviceRecord, renderIdentity } from "../twin/device.js";
import { type IdParams, ifMatchOf, NEEDS, unquoteEtag } from "./wire.js";

/** `GET /devices?top=` bounds: "top: Maximum number of device identities returned; default and maximum 1000". */
const DEFAULT_TOP = 1000;
const MAX_TOP = 1000;

/** Identity registry routes ("Service - Devices" and "Service - Bulk Registry" REST reference, 2021-04-12). */
export function devicesRoutes(registry: DeviceRegistry) {
  const identity = (r: DeviceRecord) => renderIdentity(r, registry.cloudToDeviceCount(r.deviceId));
  return async (app: FastifyInstance) => {
    app.get<IdParams>("/devices/:id", NEEDS.registryRead, async (req) =>
      identity(registry.require(req.params.id)),
    );
    // "Create Or Update Identity": without If-Match the device must not exist yet; with it, it is updated.
    app.put<IdParams>("/devices/:id", NEEDS.registryWrite, async (req) => {
      const ifMatch = ifMatchOf(req);
      const body = (req.body ?? {}) as IdentityInput;
      const record =
        ifMatch !== undefined
          ? registry.identities.update(req.params.id, body, ifMatch)
          : registry.identities.create(req.params.id, body);
      return identity(record);
    });
    app.delete<IdParams>("/devices/:id", NEEDS.registryWrite, async (req, reply) => {
      registry.identities.delete(req.params.id, ifMatchOf(req) ?? "*");
      return reply.code(204).send();
    });
    app.get<{ Querystring: { top?: string } }>("/devices", NEEDS.registryRead, async (req) => {
      const top = req.query.top === undefined ? DEFAULT_TOP : Number(req.query.top);
      if (!Number.isInteger(top) || top < 1 || top > MAX_TOP)
        throw errors.badRequest(`top must be a whole number from 1 to ${MAX_TOP}`);
      return registry.identities.list(top).map(identity);
    });
    // "Bulk Registry - Update Registry": per-device results in a BulkRegistryOperationResult (see bulk.ts).
    app.post("/devices", NEEDS.registryWrite, async (req) =>
      runBulk(registry, parseBulk(req.body, unquoteEtag)),
    );
  };
}
