import { randomBytes } from "node:crypto";
import { errors, HubError } from "../errors.js";
import type { GoneReason, MethodChannel, MethodEvents } from "./channel.js";
import {
  MAX_PAYLOAD_BYTES,
  MAX_PENDING_PER_DEVICE,
  MAX_PENDING_PER_HUB,
  MAX_WAITING_PAYLOAD_BYTES,
} from "./limits.js";
import type { MethodCall } from "./request.js";

/** The device's answer: its status and its payload as JSON text ("null" when it sent no body). */
export interface MethodResult {
  status: number;
  payload: string;
}

export interface MethodLimits {
  perDevice: number;
  perHub: number;
  waitingPayloadBytes: number;
}

interface Pending {
  deviceId: string;
  rid: string;
  call: MethodCall;
  /** Handed to the device's connection; until then the call waits for the device (connectTimeoutInSeconds). */
  sent: boolean;
  timer: NodeJS.Timeout;
  settle(outcome: MethodResult | HubError): void;
}

/**
 * Direct method calls in flight ("Understand and invoke direct methods from IoT Hub", below: the doc): each has a
 * request ID, a timer, and a device it waits for; answers are routed by device and request ID.
 *
 * - A call to a device that can receive methods is sent at once and waits `responseTimeoutInSeconds` for the
 *   answer ("the amount of time that IoT Hub service must await for completion of a direct method execution on a
 *   device"), then fails 504 GatewayTimeout (504101).
 * - Otherwise it waits up to `connectTimeoutInSeconds` ("the amount of time upon invocation of a direct method that
 *   IoT Hub service must await for a disconnected device to come online"; 0 = "devices must already be online")
 *   for the device to connect and subscribe, then fails 404 DeviceNotOnline (404103): "404 indicates that either
 *   device ID is invalid, or that the device was not online upon invocation of a direct method and for
 *   connectTimeoutInSeconds thereafter". A connected device that has not subscribed counts as not online ("the
 *   error likely occurred because the direct method callback isn't registered on the device", error-code
 *   reference, 404103).
 * - An answer reaches only the call of that device with that request ID; anything else is reported back as not
 *   routed (the MQTT side logs it). A second answer, or one after the timeout, finds nothing.
 * - When a device's connection ends, the calls it had been sent fail at once: 503 DeviceUnavailable (503102), or
 *   400 ConnectionForcefullyClosedOnNewConnection (400027, "direct method invocation fails with the error code
 *   400027 ... when another client creates a new connection to IoT Hub using the same identity"). Calls still
 *   waiting for the device to come online keep waiting.
 * - Bounded: per device and per hub counts and the bytes of waiting payloads (limits.ts); every timer is cleared
 *   when its call settles, and `close` answers every call at once (503 ServiceUnavailable).
 */
export class MethodInvoker implements MethodEvents {
  private channel: MethodChannel | undefined;
  private readonly byDevice = new Map<string, Map<string, Pending>>();
  private total = 0;
  private waitingBytes = 0;
  private counter = 0;
  private randomPool = Buffer.alloc(0);
  private randomAt = 0;
  private closed = false;
  /** Callers whose answer is still being delivered (see `holdUntil`). */
  private readonly delivering = new Set<Promise<void>>();
  private readonly limits: MethodLimits;

  constructor(
    /** A line about one device (rate-limited per device by the caller). */
    private readonly log: (deviceId: string, line: string) => void,
    limits: Partial<MethodLimits> = {},
  ) {
    this.limits = {
      perDevice: limits.perDevice ?? MAX_PENDING_PER_DEVICE,
      perHub: limits.perHub ?? MAX_PENDING_PER_HUB,
      waitingPayloadBytes: limits.waitingPayloadBytes ?? MAX_WAITING_PAYLOAD_BYTES,
    };
  }

  /** The device side, once its front end is loaded. */
  attach(channel: MethodChannel): void {
    this.channel = channel;
  }

  /** Calls waiting for an answer or for their device, in the whole hub. */
  get pending(): number {
    return this.total;
  }

  /**
   * Invokes a method on a registered device; rejects with the HubError IoT Hub would answer. `abandoned`: the
   * caller went away (its HTTPS connection closed), so the call stops holding its place at once; an answer that
   * still comes is then one nobody waits for.
   */
  invoke(deviceId: string, call: MethodCall, abandoned?: AbortSignal): Promise<MethodResult> {
    if (this.closed) return Promise.reject(errors.unavailable("The hub is stopping"));
    const calls = this.byDevice.get(deviceId);
    if ((calls?.size ?? 0) >= this.limits.perDevice)
      return Promise.reject(
        errors.methodsInFlight(
          `Device ${JSON.stringify(deviceId)} already has ${this.limits.perDevice} direct methods in flight (local-hub's limit per device)`,
        ),
      );
    if (this.total >= this.limits.perHub)
      return Promise.reject(
        errors.tooManyMethods(
          `${this.limits.perHub} direct methods are in flight in this hub (local-hub's limit), back off and retry`,
        ),
      );
    const ready = this.channel?.canReceiveMethods(deviceId) === true;
    if (!ready && call.connectTimeoutSeconds === 0)
      return Promise.reject(this.notOnline(deviceId, call.connectTimeoutSeconds));
    const payloadBytes = ready ? 0 : Buffer.byteLength(call.payload);
    if (!ready && this.waitingBytes + payloadBytes > this.limits.waitingPayloadBytes)
      return Promise.reject(
        errors.tooManyMethods(
          "Too many direct method payloads wait for their devices to come online in this hub, back off and retry",
        ),
      );

    return new Promise<MethodResult>((resolve, reject) => {
      const rid = this.newRid();
      let settled = false;
      const pending: Pending = {
        deviceId,
        rid,
        call,
        sent: false,
        timer: undefined as unknown as NodeJS.Timeout,
        settle: (outcome) => {
          if (settled) return;
          settled = true;
          clearTimeout(pending.timer);
          if (!pending.sent) this.waitingBytes -= payloadBytes;
          const map = this.byDevice.get(deviceId);
          if (map?.get(rid) === pending) {
            map.delete(rid);
            this.total--;
            if (map.size === 0) this.byDevice.delete(deviceId);
          }
          if (outcome instanceof HubError) reject(outcome);
          else resolve(outcome);
        },
      };
      let map = calls;
      if (!map) {
        map = new Map();
        this.byDevice.set(deviceId, map);
      }
      map.set(rid, pending);
      this.total++;
      abandoned?.addEventListener("abort", () => pending.settle(errors.unavailable("The caller went away")), {
        once: true,
      });
      if (ready) {
        this.send(pending);
      } else {
        this.waitingBytes += payloadBytes;
        pending.timer = setTimeout(
          () => pending.settle(this.notOnline(deviceId, call.connectTimeoutSeconds)),
          call.connectTimeoutSeconds * 1000,
        );
      }
    });
  }

  available(deviceId: string): void {
    const calls = this.byDevice.get(deviceId);
    if (!calls) return;
    for (const pending of [...calls.values()]) {
      if (pending.sent || !this.channel?.canReceiveMethods(deviceId)) continue;
      clearTimeout(pending.timer);
      this.waitingBytes -= Buffer.byteLength(pending.call.payload);
      this.send(pending);
    }
  }

  gone(deviceId: string, reason: GoneReason): void {
    const calls = this.byDevice.get(deviceId);
    if (!calls) return;
    for (const pending of [...calls.values()]) {
      if (!pending.sent) continue;
      this.log(
        deviceId,
        `direct method ${pending.call.methodName} on ${deviceId} failed: the device ${reason === "replaced" ? "connected again elsewhere" : "disconnected"} before answering`,
      );
      pending.settle(
        reason === "replaced"
          ? errors.connectionReplaced(
              "The device's connection was closed because another client connected with the same identity",
            )
          : errors.deviceUnavailable("Device unavailable: the device disconnected before it answered"),
      );
    }
  }

  answered(deviceId: string, rid: string, status: number, body: Buffer): boolean {
    const pending = this.byDevice.get(deviceId)?.get(rid);
    if (!pending?.sent) return false;
    // "The payload for method requests and responses is a JSON document up to 128 KB" (the doc).
    if (body.length > MAX_PAYLOAD_BYTES) {
      this.log(
        deviceId,
        `direct method ${pending.call.methodName} on ${deviceId}: answer of ${body.length} bytes refused`,
      );
      pending.settle(
        errors.badDeviceResponse(
          `The device answered with ${body.length} bytes: a direct method response is at most ${MAX_PAYLOAD_BYTES} bytes (128 KB)`,
        ),
      );
      return true;
    }
    const text = body.length === 0 ? "null" : body.toString("utf8");
    try {
      JSON.parse(text);
    } catch {
      this.log(deviceId, `direct method ${pending.call.methodName} on ${deviceId}: answer is not JSON`);
      pending.settle(errors.badDeviceResponse("The device's answer is not a JSON document"));
      return true;
    }
    pending.settle({ status, payload: text });
    return true;
  }

  /** `close` waits (briefly) for `done`: the caller's answer has been delivered, so stopping does not cut it. */
  holdUntil(done: Promise<void>): void {
    this.delivering.add(done);
    void done.then(() => this.delivering.delete(done));
  }

  /**
   * Answers every call at once (the hub is stopping; 503 ServiceUnavailable) and refuses later ones; resolves
   * once those answers are delivered, or after `maxWaitMs`.
   */
  async close(maxWaitMs = 2000): Promise<void> {
    this.closed = true;
    for (const calls of [...this.byDevice.values()])
      for (const pending of [...calls.values()]) pending.settle(errors.unavailable("The hub is stopping"));
    if (this.delivering.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.delivering),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, maxWaitMs);
      }),
    ]);
    clearTimeout(timer);
  }

  private send(pending: Pending): void {
    const { deviceId, rid, call } = pending;
    pending.sent = true;
    if (!this.channel?.sendMethodRequest(deviceId, call.methodName, rid, call.payload)) {
      pending.settle(this.notOnline(deviceId, call.connectTimeoutSeconds));
      return;
    }
    pending.timer = setTimeout(() => {
      this.log(
        deviceId,
        `direct method ${call.methodName} on ${deviceId} timed out after ${call.responseTimeoutSeconds} s (504)`,
      );
      pending.settle(errors.gatewayTimeout(call.responseTimeoutSeconds));
    }, call.responseTimeoutSeconds * 1000);
  }

  private notOnline(deviceId: string, connectTimeoutSeconds: number): HubError {
    // IoT Hub's two texts: a device that is not connected, and one connected without the method subscription.
    return this.channel?.isConnected(deviceId)
      ? errors.deviceNotOnline(
          "The operation failed because the requested device isn't online or hasn't registered the direct method callback.",
          connectTimeoutSeconds,
        )
      : errors.deviceNotOnline("Timed out waiting for device to connect.", connectTimeoutSeconds);
  }

  /**
   * A request ID. The doc only says the device echoes it ("The `$rid` property is the request ID from the method
   * invocation received from IoT Hub"); the SDKs treat it as an opaque string. Here: hex like IoT Hub's own,
   * unique in this hub (a counter) and not guessable (64 random bits), at most RID_MAX_LENGTH (32) characters.
   */
  private newRid(): string {
    if (this.randomAt + 8 > this.randomPool.length) {
      this.randomPool = randomBytes(8 * 1024);
      this.randomAt = 0;
    }
    const random = this.randomPool.toString("hex", this.randomAt, this.randomAt + 8);
    this.randomAt += 8;
    this.counter++;
    return `${this.counter.toString(16)}${random}`;
  }
}
