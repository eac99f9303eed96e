/**
 * IoT Hub allows one connection per device identity: a device that connects closes the connection of any
 * client already connected with the same device ID ("Communicate with an IoT hub using the MQTT protocol": the
 * hub "drops the existing connection" when a second client connects with the same client ID, MQTT 3.1.1
 * section 3.1.4). Two device apps with the same identity, both reconnecting, knock each other off for ever.
 *
 * This tells that apart from a hub that is down or restarting: there, the connection drops once and then the
 * reconnection attempts fail; here, every reconnection succeeds and is closed again. A connection dropped
 * `threshold` times within `windowMs`, each time after it had been established, is taken over.
 */
export class TakeoverDetector {
  private up = true;
  private drops: number[] = [];

  constructor(
    private readonly threshold = 3,
    private readonly windowMs = 30_000,
  ) {}

  /** The connection is (re-)established. */
  connected(): void {
    this.up = true;
  }

  /** The connection dropped; true when the drops say another client holds this identity. */
  dropped(now = Date.now()): boolean {
    if (!this.up) return false; // a failed reconnection attempt, not a drop
    this.up = false;
    this.drops = [...this.drops.filter((t) => now - t < this.windowMs), now];
    return this.drops.length >= this.threshold;
  }

  /** How many drops fall within the window. */
  get recentDrops(): number {
    return this.drops.length;
  }
}
