import { readFileSync } from "node:fs";
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

export const DEFAULT_DEVICE_ID = "myDeviceId";

export interface CaConfig {
  /** Absolute path of the PEM file. */
  file: string;
  /** Its contents. */
  pem: string;
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
}

export interface DeviceConfig {
  connection: DeviceConnectionString;
  ca: CaConfig | undefined;
  envFile: string | undefined;
}

function label(name: string, setting: SettingValue | undefined): ValueLabel {
  return setting && setting.origin !== "the environment" ? { name, origin: setting.origin } : { name };
}

function notSetHint(settings: Settings, name: VariableName, base: string): string {
  const lookalike = settings.lookalikeHint(name);
  return lookalike ? `${lookalike} ${base}` : base;
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
        hint: "For the local hub, start it once (npm start, or npx local-hub) so that it writes .local-hub/ca.pem; for Azure IoT Hub, leave IOTHUB_CA_FILE unset.",
      },
    );
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ConfigError(`${shown} names a file with no PEM certificate in it: ${file}`, {
      setting: name,
      hint: "It must contain a '-----BEGIN CERTIFICATE-----' block: the CA certificate of the hub (for the local hub, .local-hub/ca.pem).",
    });
  }
  return { file, pem };
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
      deviceIdOrigin = `IOTHUB_DEVICE_ID in ${idSetting.origin}`;
    } else if (deviceSetting) {
      deviceId = parseDeviceConnectionString(
        deviceSetting.value,
        label("IOTHUB_DEVICE_CONNECTION_STRING", deviceSetting),
      ).deviceId;
      deviceIdOrigin = `DeviceId of IOTHUB_DEVICE_CONNECTION_STRING in ${deviceSetting.origin}`;
    } else {
      deviceId = DEFAULT_DEVICE_ID;
      deviceIdOrigin = "default";
    }
  }

  return {
    connection,
    deviceId,
    deviceIdOrigin,
    ca: readCa(settings, options.caFile, cwd),
    envFile: settings.envFile,
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
      ),
    });
  }
  const connection = parseDeviceConnectionString(
    deviceSetting.value,
    label("IOTHUB_DEVICE_CONNECTION_STRING", deviceSetting),
  );
  return { connection, ca: readCa(settings, options.caFile, cwd), envFile: settings.envFile };
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
      hint: notSetHint(settings, "EVENTHUB_CONNECTION_STRING", EVENTS_FIX),
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
    ca: readCa(settings, options.caFile, cwd),
    envFile: settings.envFile,
  };
}
