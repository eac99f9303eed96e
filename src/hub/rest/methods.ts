import type { FastifyInstance } from "fastify";
import { errors } from "../errors.js";
import type { MethodInvoker } from "../methods/invoker.js";
import { parseMethodCall } from "../methods/request.js";
import type { DeviceRegistry } from "../registry/registry.js";
import { type IdParams, NEEDS } from "./wire.js";

/**
 * "Service - Devices: Invoke Method" (`POST /twins/{id}/methods`, 2021-04-12). "Anyone with service connect
 * permissions on IoT Hub may invoke a method on a device" (direct methods doc): ServiceConnect. The answer is
 * 200 with "A JSON body in the following format: `{"status": 201, "payload": {...}}`. Both status and payload
 * are provided by the device"; errors are described in methods/invoker.ts.
 */
export function methodsRoutes(registry: DeviceRegistry, invoker: MethodInvoker) {
  return async (app: FastifyInstance) => {
    app.post<IdParams>("/twins/:id/methods", NEEDS.serviceConnect, async (req, reply) => {
      const call = parseMethodCall(req.body);
      // "During a cloud-to-device (C2D) communication, such as C2D message, twin update, or direct method, you
      // might see that the operation fails with error 404001 DeviceNotFound ... The device either isn't
      // registered or is disabled" (error-code reference).
      if (registry.require(req.params.id).status === "disabled") throw errors.deviceDisabled(req.params.id);
      // Stopping the hub answers waiting calls; it waits for this answer to be written before dropping connections.
      // A caller whose connection closes before its answer abandons the call (it stops counting against the limits).
      const abandoned = new AbortController();
      invoker.holdUntil(
        new Promise<void>((resolve) =>
          reply.raw.once("close", () => {
            if (!reply.raw.writableFinished) abandoned.abort();
            resolve();
          }),
        ),
      );
      const result = await invoker.invoke(req.params.id, call, abandoned.signal);
      // The device's JSON text as it sent it (checked to be JSON by the invoker), without parsing it again.
      return reply
        .type("application/json; charset=utf-8")
        .send(`{"status":${result.status},"payload":${result.payload}}`);
    });
  };
}
