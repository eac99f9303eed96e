import { readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { ConfigError } from "./errors.js";

/** dotenv is loaded when an env file is read: it pulls in node:crypto, which `--help` need not pay for. */
function parseDotenv(text: string): Record<string, string> {
  const dotenv = createRequire(import.meta.url)("dotenv") as typeof import("dotenv");
  return dotenv.parse(text);
}

/** Every variable the tools read, with what it is for (used in help texts and hints). */
export const VARIABLES = {
  IOTHUB_CONNECTION_STRING: "service (hub-level) connection string, used by add-tags-and-query",
  IOTHUB_DEVICE_CONNECTION_STRING: "device connection string, used by report-connectivity",
  IOTHUB_DEVICE_ID:
    "device whose twin add-tags-and-query updates (default: DeviceId of the device connection string, else myDeviceId)",
  IOTHUB_CA_FILE: "PEM file with an extra CA to trust (the local hub's CA); leave unset for Azure",
} as const;

export type VariableName = keyof typeof VARIABLES;

/** Names people use for the same thing in other samples; reported as hints, never read. */
const LOOKALIKES: Record<VariableName, string[]> = {
  IOTHUB_CONNECTION_STRING: [
    "IOTHUB_CONN_STRING",
    "SERVICE_CONNECTION_STRING",
    "CONNECTION_STRING",
    "IOT_HUB_CONNECTION_STRING",
  ],
  IOTHUB_DEVICE_CONNECTION_STRING: ["DEVICE_CONNECTION_STRING", "IOT_HUB_DEVICE_CONNECTION_STRING"],
  IOTHUB_DEVICE_ID: ["DEVICE_ID"],
  IOTHUB_CA_FILE: ["CA_FILE", "NODE_EXTRA_CA_CERTS_FILE"],
};

/** A setting's value and where it was found. */
export interface SettingValue {
  value: string;
  /** For messages: `the environment`, `--ca-file`, or the env file's path. */
  origin: string;
  /** Set when the value came from an env file: its absolute path (relative paths resolve against its folder). */
  file?: string;
  /** Set when the value came from the environment while the env file sets the variable too: that file. */
  overrides?: string;
}

export interface Settings {
  /** Absolute path of the env file that was read, if any. */
  envFile: string | undefined;
  /** The value of a variable: the environment wins over the env file; blank values count as unset. */
  get(name: VariableName): SettingValue | undefined;
  /** A hint when `name` is unset but a look-alike is set (a typo or another sample's name), else undefined. */
  lookalikeHint(name: VariableName): string | undefined;
}

export interface SettingsOptions {
  /** `--env-file <path>`: must exist. Without it, `.env` in `cwd` is read if it is a file. */
  envFile?: string;
  cwd?: string;
  env?: Record<string, string | undefined>;
}

function readEnvFile(path: string, explicit: boolean, flag: string): Record<string, string> | undefined {
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch (error) {
    if (!explicit) return undefined;
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(
      code === "ENOENT"
        ? `${flag}: file not found: ${path}`
        : `${flag}: cannot read ${path} (${code ?? "error"})`,
      { setting: flag, hint: "Pass the path of a dotenv file (KEY=value lines), e.g. --env-file .env" },
    );
  }
  if (!isFile) {
    // A default `.env` that is a folder (a Python virtualenv, say) is simply not ours.
    if (!explicit) return undefined;
    throw new ConfigError(`${flag}: ${path} is not a file.`, {
      setting: flag,
      hint: "Pass the path of a dotenv file (KEY=value lines), e.g. --env-file .env",
    });
  }
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    throw new ConfigError(`${explicit ? flag : ".env"}: cannot read ${path} (${code}).`, {
      setting: flag,
      hint: "Check the file's permissions.",
    });
  }
  if (text.includes("\u0000")) {
    throw new ConfigError(`${explicit ? flag : ".env"}: ${path} is not a text file.`, {
      setting: flag,
      hint: "Pass the path of a dotenv file (KEY=value lines).",
    });
  }
  return parseDotenv(text.replace(/^\ufeff/, ""));
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/** Reads the environment and the env file (dotenv syntax) without changing `process.env`. */
export function loadSettings(options: SettingsOptions = {}): Settings {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const explicit = options.envFile !== undefined;
  if (explicit && options.envFile!.trim() === "") {
    throw new ConfigError("--env-file: the path is empty.", {
      setting: "--env-file",
      hint: "Pass the path of a dotenv file, e.g. --env-file .env",
    });
  }
  const envFilePath = resolve(cwd, explicit ? options.envFile! : ".env");
  const fileValues = readEnvFile(envFilePath, explicit, "--env-file");
  const envFile = fileValues ? envFilePath : undefined;

  const get = (name: string): SettingValue | undefined => {
    const fromEnv = env[name];
    const fromFile = fileValues?.[name];
    if (fromEnv !== undefined && fromEnv.trim() !== "") {
      const shadowed = fromFile !== undefined && fromFile.trim() !== "";
      return { value: fromEnv, origin: "the environment", ...(shadowed ? { overrides: envFilePath } : {}) };
    }
    if (fromFile !== undefined && fromFile.trim() !== "") {
      return { value: fromFile, origin: envFilePath, file: envFilePath };
    }
    return undefined;
  };

  const lookalikeHint = (name: VariableName): string | undefined => {
    const candidates = new Set<string>([...Object.keys(fileValues ?? {}), ...Object.keys(env)]);
    for (const candidate of candidates) {
      if (candidate === name || candidate in VARIABLES) continue;
      if (get(candidate) === undefined) continue;
      const upper = candidate.toUpperCase();
      const similar =
        upper === name ||
        LOOKALIKES[name].includes(upper) ||
        (upper.includes("IOT") && editDistance(upper, name) <= 3);
      if (similar) {
        const where = env[candidate] !== undefined ? "the environment" : envFilePath;
        return `${candidate} is set in ${where}; did you mean ${name}?`;
      }
    }
    return undefined;
  };

  return { envFile, get, lookalikeHint };
}

/** Resolves a path from a setting: relative to its env file's folder when it came from one, else to `cwd`. */
export function resolveSettingPath(setting: SettingValue, cwd: string = process.cwd()): string {
  return resolve(setting.file ? dirname(setting.file) : cwd, setting.value.trim());
}

/**
 * Where a setting's value came from, in words, for `--verbose` and error messages: `an environment variable`,
 * `an exported environment variable, which overrides the value in <file>`, or `<file>`.
 */
export function describeOrigin(setting: SettingValue): string {
  if (setting.origin !== "the environment") return setting.origin;
  return setting.overrides
    ? `an exported environment variable, which overrides the value in ${setting.overrides}`
    : "an environment variable";
}
