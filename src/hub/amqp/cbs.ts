import type { Authorizer } from "../auth/authorizer.js";
import { AMQP } from "../protocol.js";
import { serveRequests } from "./request-response.js";
import type { AmqpServer } from "./server.js";

/**
 * `$cbs`: claims-based security ("Control access to IoT Hub", AMQP section: "IoT Hub ... supports SASL PLAIN
 * and AMQP Claims-Based-Security"; the put-token message of the AMQP CBS draft). A request carries
 * `operation: put-token`, `type` (a SAS token type), `name` (the audience) and the token as body; a valid
 * token becomes a claim of the connection, which links on addresses under its audience then need.
 * Answers: 202 Accepted (as Event Hubs and IoT Hub answer), 401 for a token that does not hold, 400 for a
 * malformed request.
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
    return { status: 202, description: "Accepted" };
  });
}
