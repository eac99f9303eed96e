import type { Authorizer } from "../auth/authorizer.js";
import { AMQP } from "../protocol.js";
import { serveRequests } from "./request-response.js";
import type { AmqpServer } from "./server.js";

/**
 * `$cbs`: claims-based security ("Control access to IoT Hub", AMQP section: "IoT Hub ... supports SASL PLAIN
 * and AMQP Claims-Based-Security"; the put-token message of the AMQP CBS draft). A request carries
 * `operation: put-token`, `type` (a SAS token type), `name` (the audience) and the token as body; a valid
 * token becomes a claim of the connection, which links on addresses under its audience then need.
 * Answers: 200 OK for IoT Hub audiences, 202 Accepted for Event Hubs ones (see below), 401 for a token that
 * does not hold, 400 for a malformed request.
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
    // IoT Hub answers 200 OK (azure-iothub's and azure-iot-device-amqp's CBS client treat any other status as a
    // failure: "status-code !== 200"); the Event Hubs-compatible endpoint, whose clients put tokens for
    // `sb://<host>/<entity>` audiences, answers 202 Accepted as Event Hubs does (its clients take any 2xx).
    const eventHubs = typeof props.name === "string" && /^sb:\/\//i.test(props.name);
    return eventHubs ? { status: 202, description: "Accepted" } : { status: 200, description: "OK" };
  });
}
