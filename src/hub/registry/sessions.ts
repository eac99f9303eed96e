import { Part } from "../store/store.js";
import type { Timestamps } from "./clock.js";
import type { Devices } from "./devices.js";
import type { UnitOfWork } from "./unit-of-work.js";

/**
 * What the MQTT front end records of a device's connection: connection state, activity, and the subscriptions of
 * its persistent session (see DeviceRecord). None of it changes the twin version. All device-side, so
 * group-committed (see UnitOfWork); these are called from inside the broker's hooks, where a store failure must
 * not throw.
 */
export class Sessions {
  constructor(
    private readonly devices: Devices,
    private readonly work: UnitOfWork,
    private readonly time: Timestamps,
  ) {}

  /** Connection state is kept for the twin and identity; connecting is activity too. */
  setConnected(deviceId: string, connected: boolean): void {
    const current = this.devices.find(deviceId);
    if (!current) return;
    const now = this.time.now();
    this.work.stage(
      {
        ...current,
        connectionState: connected ? "Connected" : "Disconnected",
        connectionStateUpdatedTime: now,
        lastActivityTime: connected ? now : current.lastActivityTime,
      },
      connected ? Part.SESSION | Part.ACTIVITY : Part.SESSION,
    );
  }

  /** The device did something (telemetry): its lastActivityTime. */
  touch(deviceId: string): void {
    const current = this.devices.find(deviceId);
    if (current) this.work.stage({ ...current, lastActivityTime: this.time.now() }, Part.ACTIVITY);
  }

  /** Records a subscription of the device's MQTT session (see DeviceRecord). */
  setSessionSubscription(
    deviceId: string,
    which: "desiredSubscribed" | "twinResponsesSubscribed" | "methodsSubscribed",
    subscribed: boolean,
  ): void {
    const current = this.devices.find(deviceId);
    if (!current || (current[which] ?? false) === subscribed) return;
    this.work.stage({ ...current, [which]: subscribed }, Part.SESSION);
  }

  /**
   * The session's cloud-to-device subscription (see DeviceRecord.cloudToDeviceSubscribedAt): made at `now` unless
   * the session already has it, or ended.
   */
  setCloudToDeviceSubscription(deviceId: string, subscribed: boolean, now = Date.now()): void {
    const current = this.devices.find(deviceId);
    if (!current || (current.cloudToDeviceSubscribedAt !== undefined) === subscribed) return;
    const { cloudToDeviceSubscribedAt: _ended, ...rest } = current;
    this.work.stage(subscribed ? { ...current, cloudToDeviceSubscribedAt: now } : rest, Part.SESSION);
  }
}
