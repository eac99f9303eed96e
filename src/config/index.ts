export {
  type DeviceConnectionString,
  type HostAddress,
  isValidDeviceId,
  parseDeviceConnectionString,
  parseServiceConnectionString,
  type ServiceConnectionString,
  type ValueLabel,
} from "./connection-string.js";
export { ConfigError, EXIT_RUNTIME, EXIT_USAGE } from "./errors.js";
export {
  type CaConfig,
  DEFAULT_DEVICE_ID,
  type DeviceConfig,
  type LoadOptions,
  loadDeviceConfig,
  loadServiceConfig,
  type ServiceConfig,
  type SettingSource,
} from "./load.js";
export { parseInteger, parseName, parseSeconds } from "./options.js";
export {
  describeOrigin,
  loadSettings,
  type Settings,
  type SettingValue,
  VARIABLES,
  type VariableName,
} from "./settings.js";
