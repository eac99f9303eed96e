/** Exit code for usage and configuration errors (bad flags, missing or malformed settings). */
export const EXIT_USAGE = 2;
/** Exit code for hub or runtime failures (unreachable host, unauthorized, unknown device, TLS trust). */
export const EXIT_RUNTIME = 1;

/**
 * A configuration or usage problem the user can fix by changing a flag, an environment variable or the
 * `.env` file. The message names the setting, says what is wrong and how to fix it; it never contains a key.
 */
export class ConfigError extends Error {
  readonly exitCode = EXIT_USAGE;
  /** The setting at fault (an environment variable or a flag), when there is one. */
  readonly setting: string | undefined;
  readonly hint: string | undefined;

  constructor(message: string, options: { setting?: string; hint?: string } = {}) {
    super(message);
    this.name = "ConfigError";
    this.setting = options.setting;
    this.hint = options.hint;
  }
}
