import type { Client } from "aedes";

/** setTimeout holds at most 2^31-1 ms (about 24.8 days); a longer wait is re-armed in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A device connection lives as long as the SAS token it logged in with: when `se` passes, the hub closes the
 * connection ("Control access to IoT Hub with SAS": the token grants access until its expiry; the device SDKs
 * renew it before then by reconnecting with a new one). A token can be valid for years, so long waits are armed
 * in steps.
 */
export function createTokenExpiry(onExpired: (client: Client) => void, now: () => number = Date.now) {
  const timers = new Map<Client, NodeJS.Timeout>();

  function arm(client: Client, expiresAt: number): void {
    disarm(client);
    const wait = expiresAt - now();
    if (wait <= 0) {
      onExpired(client);
      return;
    }
    const timer = setTimeout(
      () => {
        timers.delete(client);
        if (expiresAt - now() > 0) arm(client, expiresAt);
        else onExpired(client);
      },
      Math.min(wait, MAX_TIMER_MS),
    );
    timer.unref();
    timers.set(client, timer);
  }

  function disarm(client: Client): void {
    const timer = timers.get(client);
    if (timer) clearTimeout(timer);
    timers.delete(client);
  }

  return {
    arm,
    disarm,
    get armed() {
      return timers.size;
    },
  };
}
