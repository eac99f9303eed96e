import { existsSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { TUTORIAL_DEVICE_ID } from "../shared/rules.js";
import {
  checkDeviceId,
  type DeviceConnectionString,
  parseDeviceConnectionString,
  parseServiceConnectionString,
  type ServiceConnectionString,
  stripCopyPasteNoise,
  type ValueLabel,
} from "./connection-string.js";
import { ConfigError } from "./errors.js";
import {
  describeOrigin,
  loadSettings,
  resolveSettingPath,
  type Settings,
  type SettingValue,
  type VariableName,
} from "./settings.js";

/**
 * The one config loader. Precedence: flags > environment variables > the env file (`.env`, or the one
 * named by `--env-file`) > defaults.
 */

export const DEFAULT_DEVICE_ID = TUTORIAL_DEVICE_ID;

export interface CaConfig {
  /** Absolute path of the PEM file. */
  file: string;
  /** Its contents. */
  pem: string;
  /** The setting it came from: `IOTHUB_CA_FILE` or `--ca-file`. */
  setting: string;
}

export interface LoadOptions {
  /** `--env-file <path>` */
  envFile?: string;
  /** `--ca-file <path>`: overrides IOTHUB_CA_FILE. */
  caFile?: string;
  cwd?: string;
  env?: Record<string, string | undefined>;
}

export interface ServiceConfig {
  connection: ServiceConnectionString;
  /** The device whose twin is updated. */
  deviceId: string;
  /** Where the device ID came from, for `--verbose`. */
  deviceIdOrigin: string;
  ca: CaConfig | undefined;
  envFile: string | undefined;
  /** Each setting read and where it came from, for `--verbose`. */
  sources: SettingSource[];
}

export interface DeviceConfig {
  connection: DeviceConnectionString;
  ca: CaConfig | undefined;
  envFile: string | undefined;
  /** Each setting read and where it came from, for `--verbose`. */
  sources: SettingSource[];
}

/** A value's label for messages; an environment variable is only called out when it hides the env file's value. */
function label(name: string, setting: SettingValue | undefined): ValueLabel {
  if (!setting) return { name };
  if (setting.origin === "the environment" && !setting.overrides) return { name };
  return { name, origin: describeOrigin(setting) };
}

/** One setting and where its value came from, for `--verbose` (never the value of a key). */
export interface SettingSource {
  name: string;
  /** `--flag`, `an environment variable`, `<env file path>`, `default`, `not set`. */
  source: string;
  /** What is safe to show: a connection string without its key, a path, an ID. */
  shown: string;
}

export function settingSource(name: string, setting: SettingValue | undefined, shown: string): SettingSource {
  if (!setting) return { name, source: "not set", shown };
  if (setting.origin !== "the environment") return { name, source: `env file ${setting.origin}`, shown };
  const source = setting.overrides
    ? `environment variable (overrides the value in ${setting.overrides})`
    : "environment variable";
  return { name, source, shown };
}

/** The folder holding this project's package.json (two levels above src/config or dist/config). */
const PROJECT_DIR = fileURLToPath(new URL("../..", import.meta.url)).replace(/[\\/]$/, "");

function notSetHint(settings: Settings, name: VariableName, base: string, cwd: string): string {
  const lookalike = settings.lookalikeHint(name);
  if (lookalike) return `${lookalike} ${base}`;
  // No env file was found: most often the tool was run outside the project folder, where .env lives.
  const inProject = relative(PROJECT_DIR, cwd) === "";
  if (settings.envFile === undefined && !inProject && existsSync(join(PROJECT_DIR, "package.json"))) {
    return (
      `There is no .env in ${cwd}: the tools read ./.env from the folder they run in. Run them in the project ` +
      `folder (cd ${PROJECT_DIR}), or pass --env-file <path>.`
    );
  }
  return base;
}

function caSource(settings: Settings, caFlag: string | undefined, ca: CaConfig | undefined): SettingSource {
  if (caFlag !== undefined) return { name: "IOTHUB_CA_FILE", source: "--ca-file", shown: ca?.file ?? caFlag };
  return settingSource(
    "IOTHUB_CA_FILE",
    settings.get("IOTHUB_CA_FILE"),
    ca?.file ?? "(none: only the usual CAs)",
  );
}

function envFileSource(settings: Settings, explicit: string | undefined): SettingSource {
  return {
    name: "env file",
    source: explicit !== undefined ? "--env-file" : "default (./.env)",
    shown: settings.envFile ?? "(none found)",
  };
}

function readCa(settings: Settings, caFlag: string | undefined, cwd: string): CaConfig | undefined {
  let setting: SettingValue | undefined;
  let name = "IOTHUB_CA_FILE";
  if (caFlag !== undefined) {
    if (caFlag.trim() === "") {
      throw new ConfigError("--ca-file: the path is empty.", {
        setting: "--ca-file",
        hint: "Pass the path of a PEM file, e.g. --ca-file .local-hub/ca.pem",
      });
    }
    setting = { value: caFlag, origin: "--ca-file" };
    name = "--ca-file";
  } else {
    setting = settings.get("IOTHUB_CA_FILE");
  }
  if (!setting) return undefined;
  const where = caFlag !== undefined ? { name } : label(name, setting);
  const fromEnvFile = setting.file !== undefined;
  const shown = where.origin ? `${name} (from ${where.origin})` : name;
  const cleaned = stripCopyPasteNoise(setting.value, where, "Set it to the path of a PEM file.");
  const file = resolveSettingPath({ ...setting, value: cleaned }, cwd);
  let pem: string;
  try {
    pem = readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(
      code === "ENOENT"
        ? `${shown} names a file that does not exist: ${file}`
        : code === "EISDIR"
          ? `${shown} names a folder, not a file: ${file}`
          : `${shown}: cannot read ${file} (${code ?? "error"}).`,
      {
        setting: name,
        hint:
          "For the local hub, run `npx local-hub` in the project folder: it writes .local-hub/ca.pem there and prints " +
          `its path on the 'trust:' line; point ${name} at that file${fromEnvFile ? " (a relative path is read from the env file's folder)" : ""}. ` +
          "(`npm start` runs a temporary hub and writes no ca.pem.) For Azure IoT Hub, leave IOTHUB_CA_FILE unset.",
      },
    );
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ConfigError(`${shown} names a file with no PEM certificate in it: ${file}`, {
      setting: name,
      hint: "It must contain a '-----BEGIN CERTIFICATE-----' block: the CA certificate of the hub (for the local hub, .local-hub/ca.pem).",
    });
  }
  return { file, pem, setting: name };
}

/** Configuration for the back-end tool (add-tags-and-query). */
export function loadServiceConfig(options: LoadOptions & { deviceId?: string } = {}): ServiceConfig {
  const cwd = options.cwd ?? process.cwd();
  const settings = loadSettings({ envFile: options.envFile, cwd, env: options.env });

  const serviceSetting = settings.get("IOTHUB_CONNECTION_STRING");
  if (!serviceSetting) {
    throw new ConfigError("IOTHUB_CONNECTION_STRING is not set.", {
      setting: "IOTHUB_CONNECTION_STRING",
      hint: notSetHint(
        settings,
        "IOTHUB_CONNECTION_STRING",
        "Copy .env.example to .env for the local hub, or set it to your IoT hub's connection string for a policy with registry read and service connect permissions.",
        cwd,
      ),
    });
  }
  const connection = parseServiceConnectionString(
    serviceSetting.value,
    label("IOTHUB_CONNECTION_STRING", serviceSetting),
  );

  let deviceId: string;
  let deviceIdOrigin: string;
  if (options.deviceId !== undefined) {
    deviceId = options.deviceId;
    deviceIdOrigin = "--device";
    checkDeviceId({ name: "--device" }, deviceId.trim() === "" ? "" : deviceId);
  } else {
    const idSetting = settings.get("IOTHUB_DEVICE_ID");
    const deviceSetting = settings.get("IOTHUB_DEVICE_CONNECTION_STRING");
    if (idSetting) {
      const where = label("IOTHUB_DEVICE_ID", idSetting);
      deviceId = stripCopyPasteNoise(idSetting.value, where, "Set it to the device's ID, e.g. myDeviceId.");
      checkDeviceId(where, deviceId);
      deviceIdOrigin = `IOTHUB_DEVICE_ID, ${describeOrigin(idSetting)}`;
    } else if (deviceSetting) {
      deviceId = parseDeviceConnectionString(
        deviceSetting.value,
        label("IOTHUB_DEVICE_CONNECTION_STRING", deviceSetting),
      ).deviceId;
      deviceIdOrigin = `DeviceId of IOTHUB_DEVICE_CONNECTION_STRING, ${describeOrigin(deviceSetting)}`;
    } else {
      deviceId = DEFAULT_DEVICE_ID;
      deviceIdOrigin = "default";
    }
  }

  const ca = readCa(settings, options.caFile, cwd);
  return {
    connection,
    deviceId,
    deviceIdOrigin,
    ca,
    envFile: settings.envFile,
    sources: [
      envFileSource(settings, options.envFile),
      settingSource(
        "IOTHUB_CONNECTION_STRING",
        serviceSetting,
        `HostName=${connection.hostName};SharedAccessKeyName=${connection.sharedAccessKeyName} (key not shown)`,
      ),
      { name: "device ID", source: deviceIdOrigin, shown: deviceId },
      caSource(settings, options.caFile, ca),
    ],
  };
}

/** Configuration for the device tool (report-connectivity). */
export function loadDeviceConfig(options: LoadOptions = {}): DeviceConfig {
  const cwd = options.cwd ?? process.cwd();
  const settings = loadSettings({ envFile: options.envFile, cwd, env: options.env });
  const deviceSetting = settings.get("IOTHUB_DEVICE_CONNECTION_STRING");
  if (!deviceSetting) {
    throw new ConfigError("IOTHUB_DEVICE_CONNECTION_STRING is not set.", {
      setting: "IOTHUB_DEVICE_CONNECTION_STRING",
      hint: notSetHint(
        settings,
        "IOTHUB_DEVICE_CONNECTION_STRING",
        "Copy .env.example to .env for the local hub, or set it to your device's primary connection string (Azure portal: IoT hub > Devices > your device).",
        cwd,
      ),
    });
  }
  const connection = parseDeviceConnectionString(
    deviceSetting.value,
    label("IOTHUB_DEVICE_CONNECTION_STRING", deviceSetting),
  );
  const ca = readCa(settings, options.caFile, cwd);
  return {
    connection,
    ca,
    envFile: settings.envFile,
    sources: [
      envFileSource(settings, options.envFile),
      settingSource(
        "IOTHUB_DEVICE_CONNECTION_STRING",
        deviceSetting,
        `HostName=${connection.hostName};DeviceId=${connection.deviceId} (key not shown)`,
      ),
      caSource(settings, options.caFile, ca),
    ],
  };
}

/** Configuration for monitor-events: the Event Hubs-compatible endpoint of the hub's built-in endpoint. */
export interface EventsConfig {
  connectionString: string;
  /** sb://host[:port]/ as written. */
  endpoint: string;
  host: string;
  port: number | undefined;
  entityPath: string;
  keyName: string;
  ca: CaConfig | undefined;
  envFile: string | undefined;
  /** Each setting and where it came from, for --verbose (the key never shown). */
  sources: SettingSource[];
}

const EVENTS_FIX =
  "Use the hub's Event Hubs-compatible connection string: Endpoint=sb://<host>/;SharedAccessKeyName=service;SharedAccessKey=<key>;EntityPath=<name> (local-hub prints it and writes it to its --write-env file; Azure: IoT hub > Hub settings > Built-in endpoints).";

export function loadEventsConfig(options: LoadOptions = {}): EventsConfig {
  const cwd = options.cwd ?? process.cwd();
  const settings = loadSettings({ envFile: options.envFile, cwd, env: options.env });
  const setting = settings.get("EVENTHUB_CONNECTION_STRING");
  if (!setting) {
    throw new ConfigError("EVENTHUB_CONNECTION_STRING is not set.", {
      setting: "EVENTHUB_CONNECTION_STRING",
      hint: notSetHint(settings, "EVENTHUB_CONNECTION_STRING", EVENTS_FIX, cwd),
    });
  }
  const where = label("EVENTHUB_CONNECTION_STRING", setting);
  const shown = where.origin ? `${where.name} (from ${where.origin})` : where.name;
  const value = stripCopyPasteNoise(setting.value, where, EVENTS_FIX);
  const parts = new Map<string, string>();
  for (const part of value.split(";")) {
    if (part.trim() === "") continue;
    const eq = part.indexOf("=");
    if (eq <= 0)
      throw new ConfigError(`${shown} has a part without a name=value form.`, {
        setting: where.name,
        hint: EVENTS_FIX,
      });
    parts.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  if (parts.has("HostName")) {
    throw new ConfigError(
      `${shown} is an IoT Hub connection string (it has HostName), not the Event Hubs-compatible one.`,
      { setting: where.name, hint: EVENTS_FIX },
    );
  }
  for (const name of ["Endpoint", "SharedAccessKeyName", "SharedAccessKey", "EntityPath"]) {
    if (!parts.get(name)) {
      throw new ConfigError(`${shown} is missing ${name}.`, { setting: where.name, hint: EVENTS_FIX });
    }
  }
  const endpoint = parts.get("Endpoint") as string;
  const ca = readCa(settings, options.caFile, cwd);
  const m = /^sb:\/\/([^/:]+)(?::(\d{1,5}))?\/?$/i.exec(endpoint);
  if (!m || (m[2] !== undefined && Number(m[2]) > 65535)) {
    throw new ConfigError(`${shown} has an Endpoint that is not sb://<host>[:<port>]/.`, {
      setting: where.name,
      hint: EVENTS_FIX,
    });
  }
  return {
    connectionString: value,
    endpoint,
    host: m[1],
    port: m[2] === undefined ? undefined : Number(m[2]),
    entityPath: parts.get("EntityPath") as string,
    keyName: parts.get("SharedAccessKeyName") as string,
    ca,
    envFile: settings.envFile,
    sources: [
      envFileSource(settings, options.envFile),
      settingSource(
        "EVENTHUB_CONNECTION_STRING",
        setting,
        `Endpoint=${endpoint};SharedAccessKeyName=${parts.get("SharedAccessKeyName")};EntityPath=${parts.get("EntityPath")} (key not shown)`,
      ),
      caSource(settings, options.caFile, ca),
    ],
  };
}
