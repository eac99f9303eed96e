import type { FastifyInstance } from "fastify";
import { errors } from "../errors.js";
import { HEADERS } from "../protocol.js";
import { compileQuery, runQueryPageAsync } from "../query/index.js";
import type { TwinSource } from "../twin/types.js";
import { headerOf, NEEDS, positiveIntHeader } from "./wire.js";

/**
 * "Service - Query IoT Hub" (`POST /devices/query`): the query in the body, page size (`x-ms-max-item-count`) and
 * continuation (`x-ms-continuation`) in headers; answers carry `x-ms-item-type` and, unless last, a continuation.
 */
export function queryRoutes(source: TwinSource) {
  return async (app: FastifyInstance) => {
    app.post("/devices/query", NEEDS.serviceConnect, async (req, reply) => {
      const body = req.body as { query?: unknown } | undefined;
      if (typeof body?.query !== "string" || body.query.trim() === "") {
        throw errors.badQuery('The body must be {"query": "<query text>"}');
      }
      const pageSize = positiveIntHeader(req, HEADERS.maxItemCount);
      // In slices, with the event loop free in between (query/budget.ts).
      const page = await runQueryPageAsync(compileQuery(body.query), source, {
        pageSize,
        continuation: headerOf(req, HEADERS.continuation),
      });
      reply.header(HEADERS.itemType, page.itemType);
      if (page.continuation !== undefined) reply.header(HEADERS.continuation, page.continuation);
      // The page's JSON was made while its size was measured: sent as it is, not serialized again.
      return reply.type("application/json; charset=utf-8").send(page.json);
    });
  };
}
