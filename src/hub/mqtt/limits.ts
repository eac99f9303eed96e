/**
 * Per-device limits of the MQTT front end: what one device may make the hub hold.
 *
 * "IoT Hub quotas and throttling" documents per-hub twin throttles (S1: twin reads 100/s, twin updates 50/s;
 * over them IoT Hub "responds with error code 429") and, under "traffic shaping", a queue of requests above the
 * throttle whose "size ... is limited"; once it is full, requests are rejected with 429. It gives no per-device
 * figure for twin operations; the per-device figures it does give are small ("Maximum pending messages for
 * delivery is 50 per device" for cloud-to-device, "10 concurrent file uploads per device"). The hub follows the
 * same shape: a device may have `MAX_OUTSTANDING_TWIN_REQUESTS` twin requests in flight (received, not yet
 * answered and flushed to its socket); beyond that it gets 429 on the response topic, as the MQTT doc lists
 * for twin GET and PATCH ("429 Too many requests (throttled)").
 */
export const MAX_OUTSTANDING_TWIN_REQUESTS = 50;

/**
 * A device that does not read what the hub sends it is disconnected once this many bytes wait in its socket's
 * send buffer, instead of the hub buffering without bound. IoT Hub's MQTT side terminates the connection where
 * other protocols return errors ("AMQP returns errors for many conditions, while MQTT terminates the
 * connection"). 1 MiB holds several maximum-size twin documents (3 x 32 KB sections plus metadata).
 */
export const MAX_UNSENT_BYTES = 1024 * 1024;

/**
 * A device whose socket stays full (the hub's writes wait for it to read) this long is disconnected, as aedes
 * does for its own writes (its `drainTimeout`, 60 s by default). A client that never reads soon stops being read
 * from as well (its TLS connection takes in no more data while its output is stuck), so it may never reach
 * MAX_UNSENT_BYTES; this bounds how long it holds its connection, its buffers and its session.
 */
export const DRAIN_TIMEOUT_MS = 60_000;
