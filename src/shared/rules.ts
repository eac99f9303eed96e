/**
 * Rules the tools and the local hub share, in one place: both sides must agree on what a device ID is, which
 * device the tutorial uses, and where a hub listens and keeps its data by default. This module has no
 * imports, so the CLIs' `--help` stays fast.
 */

/**
 * IoT Hub device IDs ("Understand the identity registry in your IoT hub", device identity properties):
 * "A case-sensitive string (up to 128 characters long) of ASCII 7-bit alphanumeric characters plus certain
 * special characters: - . + % _ # * ? ! ( ) , : = @ $ '".
 */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9\-.+%_#*?!(),:=@$']{1,128}$/;
export const MAX_DEVICE_ID_LENGTH = 128;
/** The allowed characters, as messages show them. */
export const DEVICE_ID_CHARACTERS = "- . + % _ # * ? ! ( ) , : = @ $ '";

export function isValidDeviceId(deviceId: string): boolean {
  return DEVICE_ID_PATTERN.test(deviceId);
}

/** The device the tutorial creates and uses ("Get started with device twins"). */
export const TUTORIAL_DEVICE_ID = "myDeviceId";

/** The local hub's TLS port for HTTPS and MQTT, when it is not told another. */
export const DEFAULT_HUB_PORT = 18883;
/** The local hub's data folder, relative to where it is started. */
export const DEFAULT_HUB_DATA_DIR = ".local-hub";
