import { createServer, type Server } from "node:http";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Authorizer } from "../auth/authorizer.js";
import type { Permission } from "../auth/credentials.js";
import { errors, HubError } from "../errors.js";
import { HEADERS } from "../protocol.js";
import { compileQuery, QueryError, runQueryPageAsync } from "../query/index.js";
import type { DeviceRegistry, IdentityInput } from "../registry.js";
import { restThrottleHook } from "../throttle/hooks.js";
import type { Throttle } from "../throttle/index.js";
import { renderIdentity } from "../twin/device.js";
import type { TwinSource } from "../twin/types.js";

/** Requests larger than this are refused whole (a twin is at most 72 KB of properties plus metadata). */
const BODY_LIMIT = 256 * 1024;
/** `GET /devices?top=` bounds, as IoT Hub documents them. */
const DEFAULT_TOP = 1000;
const MAX_TOP = 1000;
/** Bulk registry operations take at most 100 devices per call. */
const MAX_BULK = 100;

declare module "fastify" {
  interface FastifyContextConfig {
    permission?: Permission;
  }
  interface FastifyRequest {
    policyName?: string;
  }
}

export interface RestOptions {
  registry: DeviceRegistry;
  authorizer: Authorizer;
  log: (line: string) => void;
  /** What queries read (default: the registry, always current; see consistency/delayed-source.ts). */
  querySource?: TwinSource;
  throttle?: Throttle;
}

/**
 * The service-side REST API as azure-iothub's Registry calls it. The HTTP server is never bound to a port:
 * the hub's TLS listener hands it the connections that turned out to speak HTTP.
 */
export async function createRestApi({
  registry,
  authorizer,
  log,
  querySource = registry,
  throttle,
}: RestOptions): Promise<FastifyInstance<Server>> {
  const app = Fastify({
    bodyLimit: BODY_LIMIT,
    logger: false,
    serverFactory: (handler) => createServer(handler),
    // IoT Hub device IDs may contain characters that look like path syntax once decoded.
    // `registry.list()` asks for "/devices/" with a trailing slash.
    routerOptions: { maxParamLength: 512, ignoreTrailingSlash: true },
  });

  // Empty bodies are fine (DELETE with a JSON content type); anything else must be valid JSON.
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    if (body === "") return done(null, undefined);
    parseJson(req, body as string, done);
  });

  app.addHook("onRequest", async (request) => {
    // Device-side changes waiting for their group commit are stored before any service call reads or writes.
    registry.commit();
    const permission = request.routeOptions.config.permission;
    if (permission)
      request.policyName = authorizer.service(headerOf(request, HEADERS.authorization), permission);
  });

  if (throttle) app.addHook("preHandler", restThrottleHook(throttle));

  app.addHook("onResponse", async (request, reply) => {
    const path = request.url.split("?")[0];
    log(
      `REST ${request.method} ${path} -> ${reply.statusCode}${request.policyName ? ` (${request.policyName})` : ""}`,
    );
  });

  app.setErrorHandler((error: unknown, request, reply) => {
    const hubError = toHubError(error);
    if (hubError.status >= 500)
      log(`REST ${request.method} ${request.url.split("?")[0]} failed: ${(error as Error)?.message}`);
    return sendError(reply, hubError);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, errors.routeNotFound(`${request.method} ${request.url.split("?")[0]}`)),
  );

  const read = { config: { permission: "RegistryRead" as const } };
  const write = { config: { permission: "RegistryWrite" as const } };
  const service = { config: { permission: "ServiceConnect" as const } };

  type IdParams = { Params: { id: string } };

  // Identity registry ("Service - Devices" REST reference).
  app.get<IdParams>("/devices/:id", read, async (req) => renderIdentity(registry.require(req.params.id)));
  app.put<IdParams>("/devices/:id", write, async (req) => {
    const ifMatch = headerOf(req, HEADERS.ifMatch);
    const body = (req.body ?? {}) as IdentityInput;
    const record = ifMatch
      ? registry.update(req.params.id, body, ifMatch)
      : registry.create(req.params.id, body);
    return renderIdentity(record);
  });
  app.delete<IdParams>("/devices/:id", write, async (req, reply) => {
    registry.delete(req.params.id, headerOf(req, HEADERS.ifMatch) ?? "*");
    return reply.code(204).send();
  });
  app.get<{ Querystring: { top?: string } }>("/devices", read, async (req) => {
    const top = req.query.top === undefined ? DEFAULT_TOP : Number(req.query.top);
    if (!Number.isInteger(top) || top < 1 || top > MAX_TOP)
      throw errors.badRequest(`top must be a whole number from 1 to ${MAX_TOP}`);
    return registry.list(top).map(renderIdentity);
  });
  app.post("/devices", write, async (req) => bulk(registry, req.body));
  app.get("/statistics/devices", read, async () => registry.statistics());

  // Twins ("Service - Devices: Get Twin / Update Twin / Replace Twin").
  app.get<IdParams>("/twins/:id", service, async (req, reply) =>
    twinReply(reply, registry.twin(req.params.id)),
  );
  app.patch<IdParams>("/twins/:id", service, async (req, reply) =>
    twinReply(reply, registry.updateTwin(req.params.id, req.body, headerOf(req, HEADERS.ifMatch), false)),
  );
  app.put<IdParams>("/twins/:id", service, async (req, reply) =>
    twinReply(reply, registry.updateTwin(req.params.id, req.body, headerOf(req, HEADERS.ifMatch), true)),
  );

  // Queries ("Service - Query IoT Hub"): page size and continuation travel in headers.
  app.post("/devices/query", service, async (req, reply) => {
    const body = req.body as { query?: unknown } | undefined;
    if (typeof body?.query !== "string" || body.query.trim() === "") {
      throw errors.badQuery('The body must be {"query": "<query text>"}');
    }
    const sizeHeader = headerOf(req, HEADERS.maxItemCount);
    const pageSize = sizeHeader === undefined ? undefined : Number(sizeHeader);
    if (pageSize !== undefined && (!Number.isInteger(pageSize) || pageSize < 1)) {
      throw errors.badRequest(`${HEADERS.maxItemCount} must be a positive whole number`);
    }
    const page = await runQueryPageAsync(compileQuery(body.query), querySource, {
      pageSize,
      continuation: headerOf(req, HEADERS.continuation),
    });
    reply.header(HEADERS.itemType, page.itemType);
    if (page.continuation !== undefined) reply.header(HEADERS.continuation, page.continuation);
    // The page's JSON was made while its size was measured: sent as it is, not serialized again.
    return reply.type("application/json; charset=utf-8").send(page.json);
  });

  await app.ready();
  return app;
}

function twinReply(reply: FastifyReply, twin: { etag: string }) {
  reply.header(HEADERS.etag, `"${twin.etag}"`);
  return twin;
}

function headerOf(req: FastifyRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** `POST /devices`: the SDK's addDevices/updateDevices/removeDevices; only creation is supported here. */
function bulk(registry: DeviceRegistry, body: unknown) {
  if (!Array.isArray(body) || body.length === 0 || body.length > MAX_BULK) {
    throw errors.badRequest(`The body must be an array of 1 to ${MAX_BULK} device identities`);
  }
  const inputs = body.map((item, i) => {
    if (typeof item !== "object" || item === null || typeof item.id !== "string") {
      throw errors.badRequest(`Item ${i} must be an object with an "id"`);
    }
    if (String(item.importMode ?? "create").toLowerCase() !== "create") {
      throw errors.badRequest(
        `importMode ${JSON.stringify(item.importMode)} is not supported by local-hub: only create`,
      );
    }
    const { id, importMode: _mode, ...input } = item;
    return { id: id as string, input: input as IdentityInput };
  });
  registry.createMany(inputs);
  return { isSuccessful: true, errors: [], warnings: [] };
}

function toHubError(error: unknown): HubError {
  if (error instanceof HubError) return error;
  if (error instanceof QueryError) {
    return error.kind === "continuation"
      ? errors.badContinuation(error.message)
      : errors.badQuery(error.message);
  }
  const e = error as { statusCode?: number; code?: string; message?: string };
  if (e.code === "FST_ERR_CTP_BODY_TOO_LARGE")
    return errors.tooLarge(`The request body is larger than ${BODY_LIMIT / 1024} KB`);
  if (e.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE")
    return errors.badRequest("Send the body as application/json");
  if (typeof e.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500) {
    // Fastify's own 4xx (malformed JSON, bad headers): keep the status, use IoT Hub's body shape.
    return errors.badRequest(e.message ?? "Bad request");
  }
  return errors.internal("The hub failed to handle this request; see its log");
}

function sendError(reply: FastifyReply, error: HubError) {
  return reply.code(error.status).type("application/json; charset=utf-8").send(error.body());
}
