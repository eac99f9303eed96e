import type { Authorizer } from "../auth/authorizer.js";
import { AMQP } from "../protocol.js";
import { serveRequests } from "./request-response.js";
import type { AmqpServer } from "./server.js";

/**
 * `$cbs`: claims-based security ("Control access to IoT Hub", AMQP section: "IoT Hub ... supports SASL PLAIN
 * and AMQP Claims-Based-Security"; the put-token message of the AMQP CBS draft). A request carries
 * `operation: put-token`, `type` (a SAS token type), `name` (the audience) and the token as body; a valid
 * token becomes a claim of the connection, which links on addresses under its audience then need.
 * Answers: 200 OK, 401 for a token that does not hold, 400 for a malformed request. 200, not 202: azure-iothub's
 * CBS client (its common-amqp `amqp_cbs`) takes any other status-code as a failure and works against IoT Hub, so
 * IoT Hub answers 200; @azure/event-hubs (core-amqp) accepts any 2xx. With 202 azure-iothub's `Client` over
 * `Amqp` or `AmqpWs` could not open.
 */
export function serveCbs(server: AmqpServer, authorizer: Authorizer, log: (line: string) => void): void {
  serveRequests(server, /^\/?\$cbs$/, (request, peer) => {
    const props = (request.application_properties ?? {}) as Record<string, unknown>;
    if (props.operation !== AMQP.putToken)
      return {
        status: 400,
        description: `unsupported operation '${String(props.operation)}': use put-token`,
      };
    if (typeof props.type !== "string" || !(AMQP.tokenTypes as readonly string[]).includes(props.type))
      return { status: 400, description: `unsupported token type: use ${AMQP.tokenTypes[0]}` };
    const body = request.body;
    const token = typeof body === "string" ? body : Buffer.isBuffer(body) ? body.toString("utf8") : undefined;
    const claim = authorizer.claim(token);
    if (!claim.ok) {
      log(`AMQP ${peer.id} put-token refused: ${claim.reason}`);
      return { status: 401, description: claim.reason };
    }
    peer.addClaim(claim);
    return { status: 200, description: "OK" };
  });
}
