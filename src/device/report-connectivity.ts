import type { Twin } from "azure-iot-device";
import { withTimeout } from "../sdk/errors.js";
import type { DeviceClient } from "../sdk/index.js";

/**
 * The tutorial's device app (ReportConnectivity): connect over MQTT, read the twin, report
 * `{ connectivity: { type } }`, then (unless `once`) stay connected and pass on each desired-property update.
 */

export type Properties = Record<string, unknown>;

export interface DesiredUpdate {
  /** `$version` of the desired properties after this update. */
  version: number | undefined;
  /** The properties that changed (a JSON merge patch: null means removed), without `$` metadata. */
  patch: Properties;
}

export interface ConnectivitySession {
  deviceId: string;
  /** Desired properties when the device connected, without `$` metadata. */
  desired: Properties;
  desiredVersion: number | undefined;
  /** Reported properties after the update, without `$` metadata. */
  reported: Properties;
  /** `$version` of the reported properties after the update. */
  reportedVersion: number | undefined;
  /**
   * Sends one device-to-cloud message (telemetry) with a JSON body, and resolves once the hub acknowledged it
   * (MQTT PUBACK: stored in the hub's Event Hubs-compatible endpoint).
   */
  sendTelemetry(body: Properties, properties?: Record<string, string>): Promise<void>;
  /** Closes the connection (bounded by the timeout); safe to call more than once. */
  close(): Promise<void>;
}

export interface ReportOptions {
  deviceId: string;
  type: string;
  /** Exit after the acknowledgement instead of listening for desired updates. */
  once: boolean;
  timeoutSeconds: number;
  /** Called for each desired-property update (not with `once`). Registered before the report is sent. */
  onDesiredUpdate?: (update: DesiredUpdate) => void;
  /** Called when the connection fails for good after the session started. */
  onConnectionLost?: (error: Error) => void;
  /** Called when the SDK is about to retry after a transient failure (typically: reconnecting). */
  onRetry?: (error: Error) => void;
  /** Called each time the SDK has connected again after the connection dropped. */
  onReconnected?: () => void;
  log?: (line: string) => void;
}

/** How many times one start-up step is issued at most (the first time, and again after each reconnection). */
const MAX_STEP_ATTEMPTS = 3;

/** Errors worth retrying, as the SDK's default error filter has them. */
const RETRYABLE = new Set([
  "NotConnectedError",
  "TimeoutError",
  "ThrottlingError",
  "InternalServerError",
  "ServiceUnavailableError",
]);

/**
 * The SDK's default policy (exponential back-off with jitter, transient errors only), with two changes: a
 * refused login is final (the MQTT transport reports a refused *re*connection as a retryable NotConnectedError,
 * so a device disabled or deleted while connected would otherwise be retried silently for four minutes), and
 * each retry is reported through `onRetry`.
 */
export function retryPolicy(onRetry?: (error: Error) => void) {
  return {
    shouldRetry(error: Error): boolean {
      if (!error || !RETRYABLE.has(error.name)) return false;
      if (/not authorized|bad username or password|identifier rejected/i.test(error.message ?? ""))
        return false;
      onRetry?.(error);
      return true;
    },
    nextRetryTimeout(retryCount: number, isThrottled: boolean): number {
      if (retryCount === 0 && !isThrottled) return 0;
      const [base, max] = isThrottled ? [5000, 60_000] : [100, 10_000];
      const delay = Math.min(max, base * 2 ** retryCount);
      return Math.round(delay * (0.75 + Math.random() * 0.5));
    },
  };
}

/** A deep copy without functions and without `$`-prefixed keys (`$version`, `$metadata`). */
export function withoutMetadata(value: unknown): Properties {
  if (value === null || typeof value !== "object") return {};
  const copy = JSON.parse(JSON.stringify(value)) as Properties;
  const strip = (node: unknown): void => {
    if (node === null || typeof node !== "object") return;
    for (const key of Object.keys(node)) {
      if (key.startsWith("$")) delete (node as Properties)[key];
      else strip((node as Properties)[key]);
    }
  };
  strip(copy);
  return copy;
}

function versionOf(properties: unknown): number | undefined {
  const version = (properties as { $version?: unknown } | undefined)?.$version;
  return typeof version === "number" ? version : undefined;
}

function callbackToPromise(run: (done: (err?: Error | null) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => run((err) => (err ? reject(err) : resolve())));
}

/**
 * Opens the connection and reports connectivity. With `once: false` the desired-property subscription is in
 * place before this resolves, so every update made after that is delivered to `onDesiredUpdate`.
 */
export async function reportConnectivity(
  client: DeviceClient,
  options: ReportOptions,
): Promise<ConnectivitySession> {
  const { deviceId, timeoutSeconds, log } = options;
  let closed = false;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      closed = true;
      client.removeAllListeners("disconnect");
      try {
        await withTimeout(client.close(), Math.min(timeoutSeconds, 5), "Closing the connection");
      } catch (error) {
        log?.(`Closing the connection: ${(error as Error).message}`);
      }
    })();
    return closing;
  };

  try {
    client.setRetryPolicy(retryPolicy(options.onRetry));
    log?.(`Connecting as ${deviceId} over MQTT...`);
    await withTimeout(client.open(), timeoutSeconds, "Connecting to the hub");
    // Every later "connect" is the SDK connecting again by itself, also while the steps below still run.
    let reconnected: (() => void) | undefined;
    const nextConnect = new Set<() => void>();
    client.on("connect", () => {
      if (closed) return;
      options.onReconnected?.();
      for (const wake of [...nextConnect]) wake();
      reconnected?.();
    });
    /**
     * One start-up step. A request in flight when the connection drops is not always sent again by the SDK once
     * it has reconnected (an interrupted twin request waits for ever), so a step still waiting when the client
     * connects again is issued once more (the steps are idempotent: reads, and a report of the same values).
     * The first attempt to finish wins; the step's timeout covers all of them.
     */
    const step = <T>(what: string, run: () => Promise<T>): Promise<T> => {
      const attempts = async (): Promise<T> => {
        const started: Array<Promise<T>> = [];
        for (;;) {
          const attempt = run();
          attempt.catch(() => {}); // a superseded attempt may fail later; its failure is not this step's
          started.push(attempt);
          let wake = () => {};
          const reconnect = new Promise<"reconnected">((resolve) => {
            wake = () => resolve("reconnected");
            // At most MAX_STEP_ATTEMPTS attempts: past that, wait for one of them (or the timeout).
            if (started.length < MAX_STEP_ATTEMPTS) nextConnect.add(wake);
          });
          try {
            const outcome = await Promise.race([...started, reconnect]);
            if (outcome !== "reconnected") return outcome as T;
            log?.(`${what}: connected again while waiting; sending it again.`);
          } finally {
            nextConnect.delete(wake);
          }
        }
      };
      return withTimeout(attempts(), timeoutSeconds, what);
    };
    // The SDK reconnects by itself (for up to 4 minutes); this fires when it gave up. It passes a
    // results.Disconnected object whose transportObj is the error, not an Error.
    client.on("disconnect", (result?: unknown) => {
      if (closed) return;
      const cause = (result as { transportObj?: unknown } | undefined)?.transportObj ?? result;
      options.onConnectionLost?.(cause instanceof Error ? cause : new Error("The hub closed the connection"));
    });
    client.on("error", (error: Error) => {
      if (!closed) options.onConnectionLost?.(error);
    });

    const twin: Twin = await step("Reading the device twin", () => client.getTwin());
    const desired = withoutMetadata(twin.properties.desired);
    const desiredVersion = versionOf(twin.properties.desired);
    let lastDesiredVersion = desiredVersion;
    twin.on("error", (error: Error) => {
      if (!closed) options.onConnectionLost?.(error);
    });

    if (!options.once) {
      // The SDK fires this event for patches from the hub, and with the full desired properties when a listener
      // is added and after each full read; versions already seen are skipped so only changes are passed on.
      twin.on("properties.desired", (delta: unknown) => {
        const version = versionOf(delta);
        if (version !== undefined && lastDesiredVersion !== undefined && version <= lastDesiredVersion)
          return;
        if (version !== undefined) lastDesiredVersion = version;
        options.onDesiredUpdate?.({ version, patch: withoutMetadata(delta) });
      });
      await step("Subscribing to desired property updates", () =>
        callbackToPromise((done) => twin.enableTwinDesiredPropertiesUpdates(done)),
      );
      log?.("Subscribed to desired property updates.");
    }

    const patch = { connectivity: { type: options.type } };
    await step("Reporting connectivity", () =>
      callbackToPromise((done) => twin.properties.reported.update(patch, done)),
    );
    // The SDK drops the acknowledgement's $version; read the twin again to learn it. This also delivers any
    // desired update made between the first read and the subscription.
    await step("Reading back the reported properties", () => twin.get());
    if (!options.once) {
      // IoT Hub does not replay desired updates made while a device was disconnected: once the SDK has
      // reconnected by itself, read the twin again. The full read reaches the listener above, which passes
      // it on only when its version is newer than the last one seen.
      reconnected = () => {
        log?.("Reconnected: reading the twin again for desired updates made meanwhile.");
        withTimeout(twin.get(), timeoutSeconds, "Reading the device twin after reconnecting").catch((error) =>
          log?.((error as Error).message),
        );
      };
    }
    return {
      deviceId,
      desired,
      desiredVersion,
      reported: withoutMetadata(twin.properties.reported),
      reportedVersion: versionOf(twin.properties.reported),
      sendTelemetry: async (body, properties = {}) => {
        const { default: device } = await import("azure-iot-device");
        const message = new device.Message(JSON.stringify(body));
        // "Create and read IoT Hub messages": routing queries on the body need JSON content type and encoding.
        message.contentType = "application/json";
        message.contentEncoding = "utf-8";
        for (const [key, value] of Object.entries(properties)) message.properties.add(key, value);
        await withTimeout(client.sendEvent(message), timeoutSeconds, "Sending a telemetry message");
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
