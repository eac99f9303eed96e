import type { AuthenticateError } from "aedes";
import type { FastifyRequest } from "fastify";
import { errors } from "../errors.js";
import { CONNACK } from "../protocol.js";
import type { Operation, Throttle } from "./index.js";

/** What each throttle is called in messages. */
const NAMES: Record<Operation, string> = {
  registry: "Identity registry operations",
  connect: "New device connections",
  query: "Queries",
  twinRead: "Twin reads",
  twinUpdate: "Twin updates",
};

/**
 * The throttle class of a REST call, by its route. Identity registry operations are "create, retrieve, list,
 * update, delete"; a bulk registry update counts one per device ("The same throttle limits apply to identity
 * operations made through bulk registry update operations"). `GET /statistics/devices` is in no class of the
 * table and is not throttled.
 */
export function restOperation(
  method: string,
  route: string | undefined,
  body: unknown,
): { operation: Operation; cost: number } | undefined {
  switch (route) {
    case "/devices/:id":
    case "/devices":
      return {
        operation: "registry",
        cost: method === "POST" && Array.isArray(body) ? Math.max(1, body.length) : 1,
      };
    case "/twins/:id":
      return { operation: method === "GET" ? "twinRead" : "twinUpdate", cost: 1 };
    case "/devices/query":
      return { operation: "query", cost: 1 };
    default:
      return undefined;
  }
}

/** A fastify preHandler (after authentication and body parsing) that answers 429 ThrottlingException over quota. */
export function restThrottleHook(throttle: Throttle) {
  return async (request: FastifyRequest) => {
    const op = restOperation(request.method, request.routeOptions.url, request.body);
    if (op && !throttle.allow(op.operation, op.cost))
      throw errors.throttled(NAMES[op.operation], throttle.name);
  };
}

/**
 * MQTT CONNECT over the new-connections throttle: refused with CONNACK 3 "Server unavailable" (MQTT 3.1.1, 3.2.2.3),
 * the refusal the device SDKs retry with back-off (azure-iot-mqtt-base maps it to ServiceUnavailableError, which the
 * default retry filter retries; the C# SDK retries RefusedServerUnavailable likewise). Undefined when allowed.
 */
export function connectRefusal(throttle: Throttle | undefined): AuthenticateError | undefined {
  if (!throttle || throttle.allow("connect")) return undefined;
  const err = new Error(
    `${NAMES.connect} are over the ${throttle.name} tier's throttle`,
  ) as AuthenticateError;
  err.returnCode = CONNACK.serverUnavailable;
  return err;
}

/**
 * A twin request over MQTT over its throttle: the message for the 429 answer on the response topic ("429 Too many
 * requests (throttled), as per IoT Hub throttling", MQTT doc, twin response status codes). Undefined when allowed.
 */
export function twinRequestRefusal(
  throttle: Throttle | undefined,
  kind: "twinGet" | "reportedPatch",
): string | undefined {
  const operation = kind === "twinGet" ? "twinRead" : "twinUpdate";
  if (!throttle || throttle.allow(operation)) return undefined;
  return errors.throttled(NAMES[operation], throttle.name).message;
}
