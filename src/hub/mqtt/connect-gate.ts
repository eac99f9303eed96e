import type { Client, ConnectPacket } from "aedes";

/**
 * MQTT 3.1.1 §3.1.4 lets a client send packets right after CONNECT, without waiting for CONNACK (Microsoft's
 * mosquitto samples do, in the same TLS write or the next). The server must then process them only once the
 * connection is accepted: CONNACK is "the first packet sent from the Server to the Client" (§3.2,
 * MQTT-3.2.0-1), and a refused client's packets must not be acted on (MQTT-3.1.4-5: "the Server MUST NOT
 * process any data sent by the Client after the CONNECT Packet" when it rejects the CONNECT).
 *
 * aedes queues the packets that arrive in the same read as the CONNECT until it has sent CONNACK, but stops
 * reading the socket only later (inside its authentication step, one turn after the CONNECT): a packet that
 * arrives in the next TLS record in between used to be handled at once, by a client without an ID (telemetry
 * closed the connection, a twin GET answered "404 Device null", a PUBACK could precede the CONNACK).
 *
 * This `preConnect` hook stops reading at the CONNECT itself. aedes resumes reading after it has written the
 * CONNACK of an accepted login (its `emptyQueue` step) and never for a refused one, which it closes.
 */
export function holdUntilConnack(
  client: Client,
  _packet: ConnectPacket,
  done: (error: Error | null, ok: boolean) => void,
) {
  (client as unknown as { pause(): void }).pause();
  done(null, true);
}
