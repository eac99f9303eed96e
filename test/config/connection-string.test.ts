import { describe, expect, it } from "vitest";
import {
  ConfigError,
  parseDeviceConnectionString,
  parseServiceConnectionString,
} from "../../src/config/index.js";

const KEY = "c2VjcmV0LWtleS10aGF0LW11c3QtbmV2ZXItYmUtc2hvd24=";
const SERVICE = `HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=${KEY}`;
const DEVICE = `HostName=myhub.azure-devices.net;DeviceId=myDeviceId;SharedAccessKey=${KEY}`;
const SVC = { name: "IOTHUB_CONNECTION_STRING" };
const DEV = { name: "IOTHUB_DEVICE_CONNECTION_STRING" };

/** Fragments of the key that must never appear in a message. */
function assertNoKey(text: string, key = KEY): void {
  for (let i = 0; i + 8 <= key.length; i += 4) expect(text).not.toContain(key.slice(i, i + 8));
}

function serviceError(raw: string | undefined): ConfigError {
  try {
    parseServiceConnectionString(raw, SVC);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const e = error as ConfigError;
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain("IOTHUB_CONNECTION_STRING");
    assertNoKey(`${e.message} ${e.hint}`);
    return e;
  }
  throw new Error(`expected ${raw} to be rejected`);
}

function deviceError(raw: string | undefined): ConfigError {
  try {
    parseDeviceConnectionString(raw, DEV);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const e = error as ConfigError;
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain("IOTHUB_DEVICE_CONNECTION_STRING");
    assertNoKey(`${e.message} ${e.hint}`);
    return e;
  }
  throw new Error(`expected ${raw} to be rejected`);
}

describe("service connection strings", () => {
  it("parses a plain Azure connection string and passes it on unchanged", () => {
    const cs = parseServiceConnectionString(SERVICE, SVC);
    expect(cs).toMatchObject({
      kind: "service",
      hostName: "myhub.azure-devices.net",
      host: "myhub.azure-devices.net",
      port: undefined,
      sharedAccessKeyName: "iothubowner",
      sharedAccessKey: KEY,
      value: SERVICE,
    });
  });

  it("keeps a port in HostName and splits it out", () => {
    const cs = parseServiceConnectionString(
      SERVICE.replace("myhub.azure-devices.net", "localhost:18883"),
      SVC,
    );
    expect(cs.hostName).toBe("localhost:18883");
    expect(cs.host).toBe("localhost");
    expect(cs.port).toBe(18883);
  });

  it.each([
    ["surrounding whitespace and a newline", `  ${SERVICE}\n`],
    ["double quotes", `"${SERVICE}"`],
    ["single quotes", `'${SERVICE}'`],
    ["typographic quotes", `\u201c${SERVICE}\u201d`],
    ["a trailing semicolon", `${SERVICE};`],
    ["blanks around ; and =", SERVICE.replaceAll(";", " ; ").replace("HostName=", "HostName = ")],
    ["a byte-order mark and a zero-width space", `\ufeff${SERVICE}\u200b`],
    [
      "parts in another order",
      `SharedAccessKey=${KEY};HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner`,
    ],
  ])("repairs %s", (_, raw) => {
    const cs = parseServiceConnectionString(raw, SVC);
    expect(cs.hostName).toBe("myhub.azure-devices.net");
    expect(cs.sharedAccessKeyName).toBe("iothubowner");
    expect(cs.sharedAccessKey).toBe(KEY);
    expect(cs.value).not.toMatch(/^\s|\s$|["'\u201c]/);
  });

  it("says when it is not set", () => {
    expect(serviceError(undefined).message).toMatch(/is not set/);
  });

  it.each<[string, string, RegExp]>([
    ["empty", "", /is empty/],
    ["only quotes", '""', /is empty/],
    ["missing HostName", `SharedAccessKeyName=iothubowner;SharedAccessKey=${KEY}`, /missing HostName/],
    [
      "missing SharedAccessKeyName",
      `HostName=h.azure-devices.net;SharedAccessKey=${KEY}`,
      /missing SharedAccessKeyName/,
    ],
    [
      "missing SharedAccessKey",
      "HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner",
      /missing SharedAccessKey/,
    ],
    ["a duplicated HostName", `HostName=a.azure-devices.net;${SERVICE}`, /HostName twice/],
    ["a duplicated key", `${SERVICE};SharedAccessKey=${KEY}`, /SharedAccessKey twice/],
    ["a device string", DEVICE, /device connection string/],
    [
      "an empty HostName",
      `HostName=;SharedAccessKeyName=iothubowner;SharedAccessKey=${KEY}`,
      /empty HostName/,
    ],
    [
      "an empty key",
      "HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=",
      /empty SharedAccessKey/,
    ],
    ["a key that is not base64", SERVICE.replace(KEY, `${KEY.slice(0, 20)}!${KEY.slice(21)}`), /not base64/],
    ["a truncated key", SERVICE.replace(KEY, KEY.slice(0, -3)), /multiple of 4/],
    ["a URL-safe base64 key", SERVICE.replace(KEY, `${KEY.slice(0, 10)}-_${KEY.slice(12)}`), /URL-safe/],
    [
      "a line break inside the key",
      SERVICE.replace(KEY, `${KEY.slice(0, 20)}\n${KEY.slice(20)}`),
      /whitespace/,
    ],
    ["a quote inside the key", SERVICE.replace(KEY, `${KEY.slice(0, 20)}"${KEY.slice(20)}`), /quote/],
    ["an unclosed leading quote", `"${SERVICE}`, /never closed/],
    ["a stray trailing quote", `${SERVICE}"`, /stray quote/],
    ["a part without '='", `HostName=h.azure-devices.net;iothubowner;SharedAccessKey=${KEY}`, /has no '='/],
    ["a part without a name", `HostName=h.azure-devices.net;=iothubowner;SharedAccessKey=${KEY}`, /no name/],
    ["wrong letter case", SERVICE.replace("HostName", "hostname"), /'HostName' with the wrong letter case/],
    [
      "an Event Hub-compatible endpoint",
      `Endpoint=sb://ihsuprod.servicebus.windows.net/;SharedAccessKeyName=iothubowner;SharedAccessKey=${KEY};EntityPath=myhub`,
      /Event Hub-compatible/,
    ],
    ["a URL scheme in HostName", SERVICE.replace("HostName=", "HostName=https://"), /URL scheme/],
    ["a trailing slash in HostName", SERVICE.replace(".net;", ".net/;"), /'\/'/],
    ["an invalid port", SERVICE.replace(".net;", ".net:99999;"), /invalid port/],
    ["a non-numeric port", SERVICE.replace(".net;", ".net:https;"), /invalid port/],
    [
      "an invalid host name",
      SERVICE.replace("myhub.azure-devices.net", "my_hub..net"),
      /not a valid host name/,
    ],
    [
      "a shared access signature",
      `HostName=h.azure-devices.net;SharedAccessSignature=SharedAccessSignature sr=h&sig=x&se=1`,
      /SharedAccessSignature/,
    ],
    ["its own variable name inside", `IOTHUB_CONNECTION_STRING=${SERVICE}`, /contains its own name/],
    ["a module string", `${DEVICE};ModuleId=m1`, /module connection string/],
    ["an invalid policy name", SERVICE.replace("iothubowner", "iot hub owner"), /whitespace|policy name/],
  ])("rejects %s", (_, raw, pattern) => {
    const error = serviceError(raw);
    expect(error.message).toMatch(pattern);
    expect(error.hint).toBeTruthy();
  });

  it("does not echo an unrecognised part name, which may be a piece of a key", () => {
    const raw = `HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0;LWtleS10aGF0=`;
    const error = serviceError(raw);
    expect(error.message).toMatch(/part 4 of 4 has an unrecognised name/);
    expect(error.message).not.toContain("LWtleS10aGF0");
  });
});

describe("device connection strings", () => {
  it("parses a device string with a key", () => {
    const cs = parseDeviceConnectionString(DEVICE, DEV);
    expect(cs).toMatchObject({ kind: "device", hostName: "myhub.azure-devices.net", deviceId: "myDeviceId" });
    expect(cs.sharedAccessKey).toBe(KEY);
    expect(cs.value).toBe(DEVICE);
  });

  it("accepts a shared access signature and a gateway host name", () => {
    const sas = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fd1&sig=abc%3D&se=1999999999";
    const cs = parseDeviceConnectionString(
      `HostName=myhub.azure-devices.net;DeviceId=d1;SharedAccessSignature=${sas};GatewayHostName=edge.local`,
      DEV,
    );
    expect(cs.sharedAccessSignature).toBe(sas);
    expect(cs.sharedAccessKey).toBeUndefined();
    expect(cs.gatewayHostName).toBe("edge.local");
  });

  it("accepts device IDs with the punctuation IoT Hub allows", () => {
    const cs = parseDeviceConnectionString(
      DEVICE.replace("myDeviceId", () => "dev-1.a+b%_#*?!(),:=@$'x"),
      DEV,
    );
    expect(cs.deviceId).toBe("dev-1.a+b%_#*?!(),:=@$'x");
  });

  it("keeps a port in HostName", () => {
    const cs = parseDeviceConnectionString(DEVICE.replace("myhub.azure-devices.net", "localhost:18883"), DEV);
    expect(cs.port).toBe(18883);
    expect(cs.hostName).toBe("localhost:18883");
  });

  it.each<[string, string | undefined, RegExp]>([
    ["unset", undefined, /is not set/],
    ["a service string", SERVICE, /service connection string/],
    ["missing DeviceId", `HostName=h.azure-devices.net;SharedAccessKey=${KEY}`, /missing DeviceId/],
    ["missing the key", "HostName=h.azure-devices.net;DeviceId=d1", /missing SharedAccessKey/],
    [
      "both a key and a signature",
      `${DEVICE};SharedAccessSignature=SharedAccessSignature sr=a&sig=b&se=1`,
      /both/,
    ],
    [
      "a malformed signature",
      "HostName=h.azure-devices.net;DeviceId=d1;SharedAccessSignature=sig=abc",
      /malformed SharedAccessSignature/,
    ],
    ["a module string", `${DEVICE};ModuleId=m1`, /module connection string/],
    ["x509", "HostName=h.azure-devices.net;DeviceId=d1;x509=true", /X\.509/],
    ["a device ID with a slash", DEVICE.replace("myDeviceId", "my/device"), /not a valid device ID/],
    [
      "a device ID longer than 128 characters",
      DEVICE.replace("myDeviceId", "d".repeat(129)),
      /longer than 128/,
    ],
    ["a key that is not base64", DEVICE.replace(KEY, "not-base64!"), /not base64/],
    ["SharedAccessKeyName next to DeviceId", `${DEVICE};SharedAccessKeyName=device`, /SharedAccessKeyName/],
    [
      "an invalid gateway host",
      `${DEVICE};GatewayHostName=https://edge`,
      /GatewayHostName with a URL scheme/,
    ],
  ])("rejects %s", (_, raw, pattern) => {
    const error = deviceError(raw);
    expect(error.message).toMatch(pattern);
  });
});
