/**
 * How cloud-to-device messaging reaches devices, without knowing the protocol: the MQTT front end implements
 * it (mqtt/devicebound.ts) and the hub injects it, so the queue never touches the broker.
 */
export interface MessageChannel {
  /**
   * The connection of `deviceId` that receives cloud-to-device messages now (connected and subscribed to its
   * devicebound topic), or undefined.
   */
  receiver(deviceId: string): DeviceReceiver | undefined;
}

export interface DeviceReceiver {
  /** When the connection's session subscribed (ms since the epoch): older messages are not for it. */
  readonly subscribedAt: number;
  /**
   * Sends one message (MQTT: a QoS 1 PUBLISH on `topic`). False when the connection takes no more now (its
   * in-flight limit); then the queue waits for `ChannelEvents.ready`. `acked` runs once when the device
   * acknowledges it (MQTT: PUBACK); it never runs if the connection ends first.
   */
  send(topic: string, body: Buffer, acked: () => void): boolean;
}

/** What the channel tells the queue. */
export interface ChannelEvents {
  /** A connection of the device can take messages: it subscribed, connected with a kept subscription, or has room again. */
  ready(deviceId: string): void;
}
