import type { FastifyReply, FastifyRequest } from "fastify";
import type { Permission } from "../auth/credentials.js";
import { errors, type HubError } from "../errors.js";
import { HEADERS } from "../protocol.js";
import type { EtagCondition } from "../registry/etag.js";

/**
 * Wire syntax of the REST API, in one place: headers in, typed values out, and IoT Hub's error responses.
 * Route plugins turn requests into typed registry calls with these; the registry never sees raw header syntax.
 */

declare module "fastify" {
  interface FastifyContextConfig {
    permission?: Permission;
  }
  interface FastifyRequest {
    policyName?: string;
  }
}

/** Route options naming the permission a route needs ("Control access to IoT Hub": RegistryRead, ...). */
export const NEEDS = {
  registryRead: { config: { permission: "RegistryRead" as const } },
  registryWrite: { config: { permission: "RegistryWrite" as const } },
  serviceConnect: { config: { permission: "ServiceConnect" as const } },
};

export type IdParams = { Params: { id: string } };

export function headerOf(req: FastifyRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** An etag as sent in If-Match or a body (`"AAAA="`, `W/"AAAA="` or bare `AAAA=`), without quotes. */
export function unquoteEtag(value: string): string {
  return value
    .trim()
    .replace(/^W\//, "")
    .replace(/^"(.*)"$/, "$1");
}

/** The If-Match header as an etag condition (`*` or an etag), or undefined when absent. */
export function ifMatchOf(req: FastifyRequest): EtagCondition | undefined {
  const value = headerOf(req, HEADERS.ifMatch);
  return value === undefined ? undefined : unquoteEtag(value);
}

/** A header holding a positive whole number, or undefined when absent; anything else is a 400. */
export function positiveIntHeader(req: FastifyRequest, name: string): number | undefined {
  const text = headerOf(req, name);
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw errors.badRequest(`${name} must be a positive whole number`);
  return n;
}

/** IoT Hub's error response: status, `iothub-errorcode` header, `{Message: "ErrorCode:<code>;...", ...}` body. */
export function sendError(reply: FastifyReply, error: HubError) {
  return reply
    .code(error.status)
    .header(HEADERS.errorCode, error.code)
    .type("application/json; charset=utf-8")
    .send(error.body());
}
