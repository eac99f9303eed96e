import { ConfigError } from "./errors.js";

/**
 * Validation of the tools' flag values. Values that end up inside an IoT Hub query are restricted so
 * they cannot change its meaning (no quotes, backslashes or control characters).
 */

export function parseName(flag: string, raw: string, example: string): string {
  const value = raw.trim();
  if (value === "") {
    throw new ConfigError(`${flag} is empty.`, {
      setting: flag,
      hint: `Pass a value, e.g. ${flag} ${example}`,
    });
  }
  if (value.length > 128) {
    throw new ConfigError(`${flag} is longer than 128 characters.`, {
      setting: flag,
      hint: `e.g. ${flag} ${example}`,
    });
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/['"\\`\u0000-\u001f\u007f]/.test(value)) {
    throw new ConfigError(`${flag} contains a quote, backslash or control character.`, {
      setting: flag,
      hint: `Use letters, digits, spaces and punctuation other than quotes, e.g. ${flag} ${example}`,
    });
  }
  return value;
}

export function parseInteger(flag: string, raw: string, min: number, max: number): number {
  const value = raw.trim();
  const parsed = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    throw new ConfigError(`${flag} must be a whole number from ${min} to ${max}.`, {
      setting: flag,
      hint: `e.g. ${flag} ${Math.min(Math.max(min, 10), max)}`,
    });
  }
  return parsed;
}

/** Seconds, possibly fractional. */
export function parseSeconds(flag: string, raw: string, min: number, max: number): number {
  const value = raw.trim();
  const parsed = /^\d+(\.\d+)?$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isFinite(parsed) || parsed < min || parsed > max) {
    throw new ConfigError(`${flag} must be a number of seconds from ${min} to ${max}.`, {
      setting: flag,
      hint: `e.g. ${flag} 30`,
    });
  }
  return parsed;
}
