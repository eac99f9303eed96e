import type { FastifyInstance } from "fastify";
import type { DeviceRegistry } from "../registry/registry.js";
import { NEEDS } from "./wire.js";

/** "Service - Statistics: Get Device Statistics" (`GET /statistics/devices`). */
export function statisticsRoutes(registry: DeviceRegistry) {
  return async (app: FastifyInstance) => {
    app.get("/statistics/devices", NEEDS.registryRead, async () => registry.identities.statistics());
  };
}
