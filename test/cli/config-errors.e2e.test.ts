import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { expectFailure, run } from "./support.js";

/**
 * Every configuration mistake ends with exit code 2, a message naming the variable (or flag) at fault, a hint,
 * and never the key. These run the built tools; none of them gets as far as the network.
 */

const KEY = "c2VjcmV0LWtleS10aGF0LW11c3QtbmV2ZXItYmUtc2hvd24=";
const HOST = "localhost:1";
const SERVICE = `HostName=${HOST};SharedAccessKeyName=iothubowner;SharedAccessKey=${KEY}`;
const DEVICE = `HostName=${HOST};DeviceId=myDeviceId;SharedAccessKey=${KEY}`;

const dir = mkdtempSync(join(tmpdir(), "config-errors-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let count = 0;
function file(text: string | Buffer): string {
  const path = join(dir, `case-${count++}.env`);
  writeFileSync(path, text);
  return path;
}

type Tool = "add-tags-and-query" | "report-connectivity";
const toolFor = (variable: string): Tool =>
  variable === "IOTHUB_DEVICE_CONNECTION_STRING" ? "report-connectivity" : "add-tags-and-query";

/** [description, variable, value, expected message] — the value is put in an env file. */
const MALFORMED: [string, string, string, RegExp][] = [
  [
    "missing HostName",
    "IOTHUB_CONNECTION_STRING",
    `SharedAccessKeyName=iothubowner;SharedAccessKey=${KEY}`,
    /is missing HostName/,
  ],
  [
    "missing SharedAccessKeyName",
    "IOTHUB_CONNECTION_STRING",
    `HostName=${HOST};SharedAccessKey=${KEY}`,
    /is missing SharedAccessKeyName/,
  ],
  [
    "missing SharedAccessKey",
    "IOTHUB_CONNECTION_STRING",
    `HostName=${HOST};SharedAccessKeyName=iothubowner`,
    /is missing SharedAccessKey/,
  ],
  [
    "a duplicated part",
    "IOTHUB_CONNECTION_STRING",
    `${SERVICE};SharedAccessKeyName=service`,
    /has the part SharedAccessKeyName twice/,
  ],
  [
    "a device string where a service string is needed",
    "IOTHUB_CONNECTION_STRING",
    DEVICE,
    /is a device connection string/,
  ],
  [
    "a service string where a device string is needed",
    "IOTHUB_DEVICE_CONNECTION_STRING",
    SERVICE,
    /is a service connection string/,
  ],
  [
    "a key that is not base64",
    "IOTHUB_CONNECTION_STRING",
    SERVICE.replace(KEY, `${KEY.slice(0, 30)}$%${KEY.slice(32)}`),
    /not base64/,
  ],
  [
    "a truncated key",
    "IOTHUB_DEVICE_CONNECTION_STRING",
    DEVICE.replace(KEY, KEY.slice(0, 41)),
    /multiple of 4/,
  ],
  [
    "a URL-safe key",
    "IOTHUB_CONNECTION_STRING",
    SERVICE.replace(KEY, `${KEY.slice(0, 8)}_-${KEY.slice(10)}`),
    /URL-safe base64/,
  ],
  [
    "an empty key",
    "IOTHUB_DEVICE_CONNECTION_STRING",
    `HostName=${HOST};DeviceId=myDeviceId;SharedAccessKey=`,
    /has an empty SharedAccessKey/,
  ],
  ["an empty HostName", "IOTHUB_CONNECTION_STRING", SERVICE.replace(HOST, ""), /has an empty HostName/],
  ["an unclosed quote", "IOTHUB_CONNECTION_STRING", `'${SERVICE}`, /quote that is never closed/],
  ["a stray trailing quote", "IOTHUB_DEVICE_CONNECTION_STRING", `${DEVICE}"`, /stray quote/],
  [
    "a space inside the key",
    "IOTHUB_CONNECTION_STRING",
    `"${SERVICE.replace(KEY, `${KEY.slice(0, 20)} ${KEY.slice(20)}`)}"`,
    /whitespace/,
  ],
  [
    "a part without '='",
    "IOTHUB_CONNECTION_STRING",
    SERVICE.replace(";SharedAccessKeyName=", ";"),
    /has no '='/,
  ],
  [
    "lower-case part names",
    "IOTHUB_DEVICE_CONNECTION_STRING",
    DEVICE.replace("DeviceId", "deviceid"),
    /wrong letter case/,
  ],
  [
    "the Event Hub-compatible endpoint",
    "IOTHUB_CONNECTION_STRING",
    `Endpoint=sb://iothub-ns-x.servicebus.windows.net/;SharedAccessKeyName=iothubowner;SharedAccessKey=${KEY};EntityPath=x`,
    /Event Hub-compatible endpoint/,
  ],
  [
    "a URL instead of a host name",
    "IOTHUB_CONNECTION_STRING",
    SERVICE.replace(HOST, `https://${HOST}`),
    /URL scheme/,
  ],
  [
    "a port out of range",
    "IOTHUB_DEVICE_CONNECTION_STRING",
    DEVICE.replace(HOST, "localhost:70000"),
    /invalid port/,
  ],
  [
    "a host name with a path",
    "IOTHUB_CONNECTION_STRING",
    SERVICE.replace(HOST, "myhub.azure-devices.net/devices"),
    /with a '\/'/,
  ],
  [
    "a module connection string",
    "IOTHUB_DEVICE_CONNECTION_STRING",
    `${DEVICE};ModuleId=m1`,
    /module connection string/,
  ],
  [
    "an X.509 device string",
    "IOTHUB_DEVICE_CONNECTION_STRING",
    `HostName=${HOST};DeviceId=d;x509=true`,
    /X\.509/,
  ],
  [
    "a device ID IoT Hub does not allow",
    "IOTHUB_DEVICE_CONNECTION_STRING",
    DEVICE.replace("myDeviceId", "my/device"),
    /not a valid device ID/,
  ],
  [
    "both a key and a signature",
    "IOTHUB_DEVICE_CONNECTION_STRING",
    `${DEVICE};SharedAccessSignature=SharedAccessSignature sr=a&sig=b&se=1`,
    /both SharedAccessKey and SharedAccessSignature/,
  ],
  [
    "the variable's own name inside the value",
    "IOTHUB_CONNECTION_STRING",
    `IOTHUB_CONNECTION_STRING=${SERVICE}`,
    /contains its own name/,
  ],
  ["an unrecognised part", "IOTHUB_CONNECTION_STRING", `${SERVICE};Foo=bar`, /unrecognised name/],
  [
    "an invalid IOTHUB_DEVICE_ID",
    "IOTHUB_DEVICE_ID",
    "my device",
    /IOTHUB_DEVICE_ID .*not a valid device ID/,
  ],
];

describe.concurrent("configuration errors exit 2, name the variable and never echo the key", () => {
  it.each(MALFORMED)("%s", async (_, variable, value, pattern) => {
    const lines = [`${variable}=${value}`];
    if (variable === "IOTHUB_DEVICE_ID") lines.unshift(`IOTHUB_CONNECTION_STRING=${SERVICE}`);
    const envFile = file(`${lines.join("\n")}\n`);
    const result = await run(toolFor(variable), ["--env-file", envFile]);
    expectFailure(result, 2, [KEY]);
    expect(result.stderr).toMatch(
      new RegExp(`^error: ${variable} \\(from ${envFile.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\) `, "m"),
    );
    expect(result.stderr).toMatch(pattern);
    expect(result.stdout).toBe("");
  });

  it.each(MALFORMED.filter(([, v]) => v !== "IOTHUB_DEVICE_ID").slice(0, 6))(
    "the same from the environment: %s",
    async (_, variable, value, pattern) => {
      const result = await run(toolFor(variable), [], { env: { [variable]: value } });
      expectFailure(result, 2, [KEY]);
      expect(result.stderr).toMatch(new RegExp(`^error: ${variable} `, "m"));
      expect(result.stderr).not.toContain("(from ");
      expect(result.stderr).toMatch(pattern);
    },
  );

  it.each<[string, Tool, RegExp]>([
    ["add-tags-and-query", "add-tags-and-query", /^error: IOTHUB_CONNECTION_STRING is not set\.$/m],
    ["report-connectivity", "report-connectivity", /^error: IOTHUB_DEVICE_CONNECTION_STRING is not set\.$/m],
  ])("%s without any settings says what is not set and how to get it", async (_, tool, pattern) => {
    const result = await run(tool, ["--env-file", file("# nothing here\n")]);
    expectFailure(result, 2);
    expect(result.stderr).toMatch(pattern);
    expect(result.stderr).toMatch(/^hint: Copy \.env\.example to \.env/m);
  });

  it.each<[string, Tool, RegExp]>([
    ["add-tags-and-query", "add-tags-and-query", /^error: IOTHUB_CONNECTION_STRING is not set\.$/m],
    ["report-connectivity", "report-connectivity", /^error: IOTHUB_DEVICE_CONNECTION_STRING is not set\.$/m],
  ])("%s run outside the project folder says so and names the project folder", async (_, tool, pattern) => {
    const result = await run(tool, []);
    expectFailure(result, 2);
    expect(result.stderr).toMatch(pattern);
    const project = resolve(import.meta.dirname, "../..");
    expect(result.stderr).toContain(
      `the tools read ./.env from the folder they run in. Run them in the project folder (cd ${project}), or pass --env-file <path>.`,
    );
    expect(result.stderr).toMatch(/^hint: There is no \.env in \S+: /m);
  });

  it("a blank value counts as not set", async () => {
    const result = await run("add-tags-and-query", ["--env-file", file('IOTHUB_CONNECTION_STRING=""\n')]);
    expectFailure(result, 2);
    expect(result.stderr).toMatch(/IOTHUB_CONNECTION_STRING is not set/);
  });

  it("a look-alike variable name is pointed out", async () => {
    const result = await run("report-connectivity", [
      "--env-file",
      file(`DEVICE_CONNECTION_STRING=${DEVICE}\n`),
    ]);
    expectFailure(result, 2, [KEY]);
    expect(result.stderr).toMatch(
      /DEVICE_CONNECTION_STRING is set in .*; did you mean IOTHUB_DEVICE_CONNECTION_STRING\?/,
    );
  });

  // Node itself looks at `--env-file` even after the script name (nodejs/node#54232): for a path that does not
  // exist or is a folder, node exits 9 with "node: <path>: not found" before any of our code runs. Where it does
  // not, our own check answers with exit 2 (unit-tested in test/config/load.test.ts).
  it("--env-file pointing nowhere", async () => {
    const missing = join(dir, "missing.env");
    const result = await run("add-tags-and-query", ["--env-file", missing]);
    expect([2, 9]).toContain(result.code);
    expect(result.stderr).toContain(missing);
    expect(result.stderr).toMatch(/not found/);
  });

  it("--env-file pointing at a folder", async () => {
    const folder = join(dir, "a-folder");
    mkdirSync(folder, { recursive: true });
    const result = await run("report-connectivity", ["--env-file", folder]);
    expect([2, 9]).toContain(result.code);
    expect(result.stderr).toContain(folder);
  });

  it("a binary env file", async () => {
    const result = await run("add-tags-and-query", [
      "--env-file",
      file(Buffer.from([0x49, 0x4f, 0, 1, 2, 0xff])),
    ]);
    expectFailure(result, 2);
    expect(result.stderr).toMatch(/is not a text file/);
  });

  it("IOTHUB_CA_FILE naming a missing file", async () => {
    const envFile = file(`IOTHUB_DEVICE_CONNECTION_STRING=${DEVICE}\nIOTHUB_CA_FILE=nowhere/ca.pem\n`);
    const result = await run("report-connectivity", ["--env-file", envFile]);
    expectFailure(result, 2, [KEY]);
    expect(result.stderr).toMatch(
      /^error: IOTHUB_CA_FILE \(from .*\) names a file that does not exist: .*nowhere\/ca\.pem$/m,
    );
    expect(result.stderr).toContain(
      "hint: For the local hub, run `npx local-hub` in the project folder: it writes .local-hub/ca.pem there and " +
        "prints its path on the 'trust:' line; point IOTHUB_CA_FILE at that file (a relative path is read from the " +
        "env file's folder). (`npm start` runs a temporary hub and writes no ca.pem.) For Azure IoT Hub, leave " +
        "IOTHUB_CA_FILE unset.\n",
    );
  });

  it("IOTHUB_CA_FILE naming a file that is not PEM", async () => {
    const notPem = file("hello\n");
    const result = await run("add-tags-and-query", [
      "--env-file",
      file(`IOTHUB_CONNECTION_STRING=${SERVICE}\nIOTHUB_CA_FILE=${notPem}\n`),
    ]);
    expectFailure(result, 2, [KEY]);
    expect(result.stderr).toMatch(/IOTHUB_CA_FILE .* names a file with no PEM certificate in it/);
  });

  it("--ca-file naming a missing file", async () => {
    const result = await run("add-tags-and-query", ["--ca-file", "nope.pem"], {
      env: { IOTHUB_CONNECTION_STRING: SERVICE },
    });
    expectFailure(result, 2, [KEY]);
    expect(result.stderr).toMatch(/^error: --ca-file names a file that does not exist/m);
  });

  it("a malformed device string that add-tags-and-query needs for the device ID", async () => {
    const envFile = file(
      `IOTHUB_CONNECTION_STRING=${SERVICE}\nIOTHUB_DEVICE_CONNECTION_STRING=${DEVICE.replace(";DeviceId=myDeviceId", "")}\n`,
    );
    const result = await run("add-tags-and-query", ["--env-file", envFile]);
    expectFailure(result, 2, [KEY]);
    expect(result.stderr).toMatch(/IOTHUB_DEVICE_CONNECTION_STRING \(from .*\) is missing DeviceId/);
  });

  it("--verbose shows the stack of a configuration error but still no key", async () => {
    const result = await run("add-tags-and-query", ["--verbose"], {
      env: { IOTHUB_CONNECTION_STRING: DEVICE },
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^\s+at \S/m);
    expect(result.stderr).not.toContain(KEY.slice(0, 12));
  });
});
