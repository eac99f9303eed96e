import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import {
  ConfigError,
  DEFAULT_DEVICE_ID,
  loadDeviceConfig,
  loadServiceConfig,
  loadSettings,
} from "../../src/config/index.js";

const KEY = "c2VjcmV0LWtleS10aGF0LW11c3QtbmV2ZXItYmUtc2hvd24=";
const service = (host = "filehub.azure-devices.net") =>
  `HostName=${host};SharedAccessKeyName=iothubowner;SharedAccessKey=${KEY}`;
const device = (id = "fileDevice", host = "filehub.azure-devices.net") =>
  `HostName=${host};DeviceId=${id};SharedAccessKey=${KEY}`;
const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

const root = mkdtempSync(join(tmpdir(), "config-load-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let dir: string;
let counter = 0;
beforeEach(() => {
  dir = join(root, String(counter++));
  mkdirSync(dir);
});

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const e = error as ConfigError;
    expect(e.exitCode).toBe(2);
    expect(`${e.message} ${e.hint}`).not.toContain(KEY.slice(0, 12));
    return e;
  }
  throw new Error("expected a ConfigError");
}

describe("precedence: flags > environment > env file > defaults", () => {
  it("reads ./.env when nothing else is set", () => {
    write(".env", `IOTHUB_CONNECTION_STRING=${service()}\nIOTHUB_DEVICE_ID=fromFile\n`);
    const config = loadServiceConfig({ cwd: dir, env: {} });
    expect(config.connection.hostName).toBe("filehub.azure-devices.net");
    expect(config.deviceId).toBe("fromFile");
    expect(config.envFile).toBe(join(dir, ".env"));
  });

  it("lets environment variables override the env file", () => {
    write(".env", `IOTHUB_CONNECTION_STRING=${service()}\nIOTHUB_DEVICE_ID=fromFile\n`);
    const config = loadServiceConfig({
      cwd: dir,
      env: { IOTHUB_CONNECTION_STRING: service("envhub.azure-devices.net"), IOTHUB_DEVICE_ID: "fromEnv" },
    });
    expect(config.connection.hostName).toBe("envhub.azure-devices.net");
    expect(config.deviceId).toBe("fromEnv");
  });

  it("lets --device override both", () => {
    write(".env", `IOTHUB_CONNECTION_STRING=${service()}\nIOTHUB_DEVICE_ID=fromFile\n`);
    const config = loadServiceConfig({
      cwd: dir,
      env: { IOTHUB_DEVICE_ID: "fromEnv" },
      deviceId: "fromFlag",
    });
    expect(config.deviceId).toBe("fromFlag");
    expect(config.deviceIdOrigin).toBe("--device");
  });

  it("treats a blank environment variable as unset and falls back to the file", () => {
    write(".env", `IOTHUB_CONNECTION_STRING=${service()}\n`);
    const config = loadServiceConfig({ cwd: dir, env: { IOTHUB_CONNECTION_STRING: "  " } });
    expect(config.connection.hostName).toBe("filehub.azure-devices.net");
  });

  it("derives the device ID from the device connection string, else uses myDeviceId", () => {
    write(
      ".env",
      `IOTHUB_CONNECTION_STRING=${service()}\nIOTHUB_DEVICE_CONNECTION_STRING=${device("fromDeviceString")}\n`,
    );
    expect(loadServiceConfig({ cwd: dir, env: {} }).deviceId).toBe("fromDeviceString");
    const bare = loadServiceConfig({
      cwd: dir,
      env: {},
      envFile: write("other.env", `IOTHUB_CONNECTION_STRING=${service()}\n`),
    });
    expect(bare.deviceId).toBe(DEFAULT_DEVICE_ID);
    expect(bare.deviceIdOrigin).toBe("default");
  });

  it("prefers IOTHUB_DEVICE_ID over the device connection string", () => {
    const config = loadServiceConfig({
      cwd: dir,
      env: {
        IOTHUB_CONNECTION_STRING: service(),
        IOTHUB_DEVICE_CONNECTION_STRING: device("fromDeviceString"),
        IOTHUB_DEVICE_ID: "explicit",
      },
    });
    expect(config.deviceId).toBe("explicit");
  });

  it("reads --env-file instead of ./.env", () => {
    write(".env", `IOTHUB_DEVICE_CONNECTION_STRING=${device("fromDotEnv")}\n`);
    const other = write("custom.env", `IOTHUB_DEVICE_CONNECTION_STRING=${device("fromCustom")}\n`);
    expect(loadDeviceConfig({ cwd: dir, env: {}, envFile: other }).connection.deviceId).toBe("fromCustom");
    expect(loadDeviceConfig({ cwd: dir, env: {}, envFile: "custom.env" }).connection.deviceId).toBe(
      "fromCustom",
    );
  });

  it("parses dotenv syntax: export, quotes, comments, CRLF and a byte-order mark", () => {
    write(
      ".env",
      `\ufeff# settings\r\nexport IOTHUB_DEVICE_CONNECTION_STRING="${device("quoted")}"  # the device\r\nIOTHUB_CA_FILE='ca.pem'\r\n`,
    );
    write("ca.pem", PEM);
    const config = loadDeviceConfig({ cwd: dir, env: {} });
    expect(config.connection.deviceId).toBe("quoted");
    expect(config.ca?.pem).toBe(PEM);
  });

  it("ignores a ./.env that is a folder (a Python virtualenv, say)", () => {
    mkdirSync(join(dir, ".env"));
    const config = loadDeviceConfig({ cwd: dir, env: { IOTHUB_DEVICE_CONNECTION_STRING: device() } });
    expect(config.envFile).toBeUndefined();
  });

  it("does not change process.env", () => {
    write(".env", "IOTHUB_SOMETHING_FOR_THIS_TEST=1\n");
    loadSettings({ cwd: dir, env: {} });
    expect(process.env.IOTHUB_SOMETHING_FOR_THIS_TEST).toBeUndefined();
  });
});

describe("IOTHUB_CA_FILE", () => {
  it("resolves a relative path against the env file's folder", () => {
    mkdirSync(join(dir, "sub"));
    writeFileSync(join(dir, "sub", "ca.pem"), PEM);
    const envFile = write("sub/.env", `IOTHUB_DEVICE_CONNECTION_STRING=${device()}\nIOTHUB_CA_FILE=ca.pem\n`);
    const config = loadDeviceConfig({ cwd: root, env: {}, envFile });
    expect(config.ca?.file).toBe(join(dir, "sub", "ca.pem"));
  });

  it("resolves a relative path from the environment against the working directory", () => {
    write("ca.pem", PEM);
    const config = loadDeviceConfig({
      cwd: dir,
      env: { IOTHUB_DEVICE_CONNECTION_STRING: device(), IOTHUB_CA_FILE: "ca.pem" },
    });
    expect(config.ca?.file).toBe(join(dir, "ca.pem"));
  });

  it("lets --ca-file override IOTHUB_CA_FILE", () => {
    write("flag.pem", PEM);
    const config = loadDeviceConfig({
      cwd: dir,
      env: { IOTHUB_DEVICE_CONNECTION_STRING: device(), IOTHUB_CA_FILE: "missing.pem" },
      caFile: "flag.pem",
    });
    expect(config.ca?.file).toBe(join(dir, "flag.pem"));
  });

  it("is optional", () => {
    expect(
      loadDeviceConfig({ cwd: dir, env: { IOTHUB_DEVICE_CONNECTION_STRING: device() } }).ca,
    ).toBeUndefined();
  });
});

describe("configuration errors", () => {
  it("names the missing variable and hints at a look-alike one", () => {
    const e = configError(() => loadDeviceConfig({ cwd: dir, env: { DEVICE_CONNECTION_STRING: device() } }));
    expect(e.message).toBe("IOTHUB_DEVICE_CONNECTION_STRING is not set.");
    expect(e.hint).toMatch(
      /DEVICE_CONNECTION_STRING is set in the environment; did you mean IOTHUB_DEVICE_CONNECTION_STRING\?/,
    );
  });

  it("spots a typo in the env file's variable name", () => {
    write(".env", `IOTHUB_CONECTION_STRING=${service()}\n`);
    const e = configError(() => loadServiceConfig({ cwd: dir, env: {} }));
    expect(e.message).toMatch(/IOTHUB_CONNECTION_STRING is not set/);
    expect(e.hint).toMatch(
      /IOTHUB_CONECTION_STRING is set in .*\.env; did you mean IOTHUB_CONNECTION_STRING\?/,
    );
  });

  it("says where a malformed value came from", () => {
    write(".env", `IOTHUB_CONNECTION_STRING=${device()}\n`);
    const e = configError(() => loadServiceConfig({ cwd: dir, env: {} }));
    expect(e.message).toContain(`IOTHUB_CONNECTION_STRING (from ${join(dir, ".env")})`);
    expect(e.message).toMatch(/device connection string/);
  });

  it("validates the device connection string only when it is needed for the device ID", () => {
    const env = { IOTHUB_CONNECTION_STRING: service(), IOTHUB_DEVICE_CONNECTION_STRING: "garbage" };
    expect(configError(() => loadServiceConfig({ cwd: dir, env })).message).toMatch(
      /IOTHUB_DEVICE_CONNECTION_STRING is malformed/,
    );
    expect(loadServiceConfig({ cwd: dir, env: { ...env, IOTHUB_DEVICE_ID: "d1" } }).deviceId).toBe("d1");
  });

  it.each<[string, () => unknown, RegExp]>([
    [
      "a missing --env-file",
      () => loadDeviceConfig({ cwd: dir, env: {}, envFile: "nope.env" }),
      /--env-file: file not found/,
    ],
    [
      "an empty --env-file",
      () => loadDeviceConfig({ cwd: dir, env: {}, envFile: " " }),
      /--env-file: the path is empty/,
    ],
    [
      "an --env-file that is a folder",
      () => loadDeviceConfig({ cwd: dir, env: {}, envFile: "." }),
      /is not a file/,
    ],
    [
      "a binary --env-file",
      () => loadDeviceConfig({ cwd: dir, env: {}, envFile: write("bin.env", "IOTHUB\u0000\u0001") }),
      /not a text file/,
    ],
    [
      "a CA file that does not exist",
      () =>
        loadDeviceConfig({
          cwd: dir,
          env: { IOTHUB_DEVICE_CONNECTION_STRING: device(), IOTHUB_CA_FILE: "no.pem" },
        }),
      /IOTHUB_CA_FILE names a file that does not exist/,
    ],
    [
      "a CA file that is a folder",
      () =>
        loadDeviceConfig({
          cwd: dir,
          env: { IOTHUB_DEVICE_CONNECTION_STRING: device(), IOTHUB_CA_FILE: "." },
        }),
      /IOTHUB_CA_FILE names a folder/,
    ],
    [
      "a CA file without a certificate",
      () =>
        loadDeviceConfig({
          cwd: dir,
          env: { IOTHUB_DEVICE_CONNECTION_STRING: device(), IOTHUB_CA_FILE: write("x.pem", "not a cert") },
        }),
      /no PEM certificate/,
    ],
    [
      "an empty --ca-file",
      () => loadDeviceConfig({ cwd: dir, env: { IOTHUB_DEVICE_CONNECTION_STRING: device() }, caFile: "" }),
      /--ca-file: the path is empty/,
    ],
    [
      "an invalid IOTHUB_DEVICE_ID",
      () =>
        loadServiceConfig({
          cwd: dir,
          env: { IOTHUB_CONNECTION_STRING: service(), IOTHUB_DEVICE_ID: "a b" },
        }),
      /IOTHUB_DEVICE_ID is not a valid device ID/,
    ],
    [
      "an invalid --device",
      () => loadServiceConfig({ cwd: dir, env: { IOTHUB_CONNECTION_STRING: service() }, deviceId: "x/y" }),
      /--device is not a valid device ID/,
    ],
    [
      "an empty --device",
      () => loadServiceConfig({ cwd: dir, env: { IOTHUB_CONNECTION_STRING: service() }, deviceId: "" }),
      /--device is not a valid device ID: it is empty/,
    ],
  ])("rejects %s", (_, run, pattern) => {
    expect(configError(run).message).toMatch(pattern);
  });
});
