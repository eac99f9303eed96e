import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import Fastify, { type FastifyInstance } from "fastify";
import type { Authorizer } from "../auth/authorizer.js";
import { errors, HubError } from "../errors.js";
import type { MethodInvoker } from "../methods/invoker.js";
import { API_VERSION, API_VERSIONS, HEADERS } from "../protocol.js";
import { QueryError } from "../query/index.js";
import type { DeviceRegistry } from "../registry/registry.js";
import { restThrottleHook } from "../throttle/hooks.js";
import type { Throttle } from "../throttle/index.js";
import type { TwinSource } from "../twin/types.js";
import { devicesRoutes } from "./devices.js";
import { methodsRoutes } from "./methods.js";
import { queryRoutes } from "./query.js";
import { statisticsRoutes } from "./statistics.js";
import { twinsRoutes } from "./twins.js";
import { headerOf, sendError } from "./wire.js";

/** Requests larger than this are refused whole (a twin is at most 72 KB of properties plus metadata). */
const BODY_LIMIT = 256 * 1024;

export interface RestOptions {
  registry: DeviceRegistry;
  authorizer: Authorizer;
  log: (line: string) => void;
  /** What queries read (default: the registry, always current; see consistency/delayed-source.ts). */
  querySource?: TwinSource;
  throttle?: Throttle;
  /** Direct methods (methods/invoker.ts). */
  methods: MethodInvoker;
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
  methods,
}: RestOptions): Promise<FastifyInstance<Server>> {
  const app = Fastify({
    bodyLimit: BODY_LIMIT,
    logger: false,
    serverFactory: (handler) => createServer(handler),
    // IoT Hub device IDs may contain characters that look like path syntax once decoded.
    // `registry.list()` asks for "/devices/" with a trailing slash.
    routerOptions: { maxParamLength: 512, ignoreTrailingSlash: true },
  });

  // Empty bodies are fine (DELETE with a JSON content type); anything else must be valid JSON. Keys named
  // "__proto__" or "constructor" stay plain own properties (as JSON.parse makes them): the twin layer refuses
  // "__proto__" with a message that names it, accepts "constructor"/"prototype" as IoT Hub does, and every layer
  // reads and writes own properties only (see twin/twin.ts getOwn/setOwn).
  const parseJson = app.getDefaultJsonParser("ignore", "ignore");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    if (body === "") return done(null, undefined);
    parseJson(req, body as string, done);
  });

  app.addHook("onRequest", async (request, reply) => {
    // "each operation returns an x-ms-request-id header that can be used to obtain information about the
    // request" (IoT Hub REST reference overview): a GUID, on every answer, errors included.
    reply.header(HEADERS.requestId, randomUUID());
    // "api-version: query, required" on every service operation (REST reference, 2021-04-12); IoT Hub refuses a
    // missing or unknown one with 400 and ErrorCode InvalidProtocolVersion (iothub-errorcode header as well).
    checkApiVersion(request.query);
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

  // One plugin per resource; each turns wire input into typed registry calls.
  await app.register(devicesRoutes(registry));
  await app.register(twinsRoutes(registry));
  await app.register(queryRoutes(querySource));
  await app.register(statisticsRoutes(registry));
  await app.register(methodsRoutes(registry, methods));

  await app.ready();
  return app;
}

function checkApiVersion(query: unknown): void {
  const raw = (query as Record<string, unknown> | undefined)?.["api-version"];
  const version = Array.isArray(raw) ? raw[0] : raw;
  if (typeof version !== "string" || version === "") {
    throw errors.badApiVersion(
      `The api-version query parameter is required: add ?api-version=${API_VERSION}`,
    );
  }
  if (!API_VERSIONS.has(version)) {
    throw errors.badApiVersion(
      `api-version ${JSON.stringify(version.slice(0, 40))} is not supported: use api-version=${API_VERSION}`,
    );
  }
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
