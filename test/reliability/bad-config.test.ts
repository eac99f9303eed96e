import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, Tally } from "./support.js";

/**
 * Bad input, counted: malformed connection strings, env files and options given to the two built CLIs.
 * Every case must exit 2 with an `error:` line that names the setting at fault and says what is wrong, and
 * no part of the key may appear anywhere in the output (checked as every 8-character window of it).
 *
 * test/cli/config-errors.e2e.test.ts (the CLIs' own suite) covers the common mistakes; the cases here are
 * chosen to be different ones (copy-paste accidents, look-alike characters, odd encodings, options), so the
 * two lists together cover more ground rather than the same ground twice.
 */

const KEY = "cmVsaWFiaWxpdHktc3VpdGUta2V5LW5ldmVyLWVjaG9lZA==";
const HOST = "localhost:1";
const SERVICE = `HostName=${HOST};SharedAccessKeyName=iothubowner;SharedAccessKey=${KEY}`;
const DEVICE = `HostName=${HOST};DeviceId=myDeviceId;SharedAccessKey=${KEY}`;
const SVC = "IOTHUB_CONNECTION_STRING";
const DEV = "IOTHUB_DEVICE_CONNECTION_STRING";

type Tool = "addTagsAndQuery" | "reportConnectivity";

interface Case {
  name: string;
  tool: Tool;
  /** Variables set in the child's environment. */
  env?: Record<string, string>;
  /** Contents of an env file passed with --env-file. */
  file?: string | Buffer;
  args?: string[];
  /** The setting the message must name. */
  names: string;
  /** What the message must say about it. */
  says: RegExp;
}

const svc = (value: string, says: RegExp, name: string): Case => ({
  name,
  tool: "addTagsAndQuery",
  env: { [SVC]: value },
  names: SVC,
  says,
});
const dev = (value: string, says: RegExp, name: string): Case => ({
  name,
  tool: "reportConnectivity",
  env: { [DEV]: value },
  names: DEV,
  says,
});
const swap = (cs: string, from: string, to: string) => cs.replace(from, to);

const CASES: Case[] = [
  // Service connection strings.
  svc(KEY, /unrecognised name|has no '='/, "only the key was pasted"),
  svc(";;;", /missing HostName|is empty/, "nothing but separators"),
  svc(swap(SERVICE, HOST, "my hub.azure-devices.net"), /whitespace/, "a space in the host name"),
  svc(
    swap(SERVICE, HOST, "my_hub.azure-devices.net"),
    /not a valid host name/,
    "an underscore in the host name",
  ),
  svc(
    swap(SERVICE, HOST, "myhub.azure-devices.net."),
    /not a valid host name/,
    "a trailing dot on the host name",
  ),
  svc(swap(SERVICE, HOST, "localhost:0"), /invalid port/, "port 0"),
  svc(swap(SERVICE, HOST, "localhost:"), /invalid port/, "a colon without a port"),
  svc(swap(SERVICE, "iothubowner", ""), /empty SharedAccessKeyName/, "an empty policy name"),
  svc(swap(SERVICE, "iothubowner", "iothub/owner"), /not a valid policy name/, "a '/' in the policy name"),
  svc(swap(SERVICE, KEY, "===="), /not base64/, "a key of padding only"),
  svc(swap(SERVICE, KEY, `${KEY.slice(0, -2)}===`), /not base64/, "three padding characters"),
  svc(
    swap(SERVICE, KEY, `${KEY.slice(0, 10)}\u0430${KEY.slice(11)}`),
    /not base64/,
    "a Cyrillic look-alike letter in the key",
  ),
  svc(
    swap(SERVICE, KEY, `${KEY.slice(0, 10)}\u200b${KEY.slice(10)}`),
    /invisible character/,
    "a zero-width space in the key",
  ),
  svc(`\u201c${SERVICE}'`, /quote/, "mismatched smart and plain quotes"),
  svc(
    `${SERVICE};SharedAccessSignature=SharedAccessSignature sr=a&sig=b&se=1`,
    /SharedAccessSignature/,
    "a signature in a service string",
  ),
  svc(`${SERVICE};GatewayHostName=gw.local`, /GatewayHostName/, "a gateway in a service string"),
  svc(
    `${SERVICE};DeviceId=myDeviceId`,
    /device connection string|DeviceId/,
    "a service string with a DeviceId added",
  ),
  svc(`${SERVICE};;SharedAccessKey=${KEY}`, /twice/, "the key given twice"),
  // Device connection strings.
  dev(swap(DEVICE, "myDeviceId", ""), /empty DeviceId/, "an empty device ID"),
  dev(swap(DEVICE, "myDeviceId", "d".repeat(129)), /longer than 128/, "a device ID of 129 characters"),
  dev(swap(DEVICE, "myDeviceId", "my device"), /whitespace/, "a space in the device ID"),
  dev(swap(DEVICE, "myDeviceId", "m\u00fcnchen"), /not a valid device ID/, "a non-ASCII device ID"),
  dev(
    `HostName=${HOST};DeviceId=d1;SharedAccessSignature=SharedAccessSignature foo`,
    /malformed SharedAccessSignature/,
    "a malformed signature",
  ),
  dev(
    `HostName=${HOST};DeviceId=d1;SharedAccessSignature=`,
    /empty SharedAccessSignature/,
    "an empty signature",
  ),
  dev(`HostName=${HOST};DeviceId=d1`, /missing SharedAccessKey/, "neither key nor signature"),
  dev(`${DEVICE};GatewayHostName=gw host`, /whitespace/, "a space in the gateway host name"),
  dev(`${DEVICE};GatewayHostName=https://gw`, /URL scheme/, "a URL as the gateway"),
  dev(`${DEVICE};SharedAccessKeyName=device`, /SharedAccessKeyName/, "a policy name in a device string"),
  dev(`DeviceId=myDeviceId;SharedAccessKey=${KEY}`, /missing HostName/, "no HostName"),
  dev(
    swap(DEVICE, KEY, KEY.replaceAll("+", "-").replaceAll("/", "_").replace("=", "").replace("=", "")),
    /not valid base64|URL-safe|multiple of 4/,
    "an unpadded key",
  ),
  dev(`${DEVICE.toUpperCase()}`, /wrong letter case|unrecognised/, "a connection string in upper case"),
  // Env files.
  {
    name: "a UTF-16 env file",
    tool: "addTagsAndQuery",
    file: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`${SVC}=${SERVICE}\n`, "utf16le")]),
    names: "--env-file",
    says: /not a text file/,
  },
  {
    name: "a look-alike variable name (IOT_HUB_...)",
    tool: "addTagsAndQuery",
    file: `IOT_HUB_CONNECTION_STRING=${SERVICE}\n`,
    names: SVC,
    says: /not set[\s\S]*did you mean IOTHUB_CONNECTION_STRING/,
  },
  {
    name: "the variable name in lower case",
    tool: "reportConnectivity",
    file: `iothub_device_connection_string=${DEVICE}\n`,
    names: DEV,
    says: /not set[\s\S]*did you mean IOTHUB_DEVICE_CONNECTION_STRING/,
  },
  {
    name: "the key wrapped onto the next line",
    tool: "addTagsAndQuery",
    file: `${SVC}=HostName=${HOST};SharedAccessKeyName=iothubowner;SharedAccessKey=\n${KEY}\n`,
    names: SVC,
    says: /empty SharedAccessKey/,
  },
  {
    name: "a quoted value broken over two lines inside the key",
    tool: "reportConnectivity",
    file: `${DEV}="HostName=${HOST};DeviceId=myDeviceId;SharedAccessKey=${KEY.slice(0, 20)}\n${KEY.slice(20)}"\n`,
    names: DEV,
    says: /whitespace|line break/,
  },
  {
    name: "IOTHUB_CA_FILE naming a folder",
    tool: "reportConnectivity",
    file: `${DEV}=${DEVICE}\nIOTHUB_CA_FILE=.\n`,
    names: "IOTHUB_CA_FILE",
    says: /names a folder/,
  },
  {
    name: "IOTHUB_DEVICE_ID too long",
    tool: "addTagsAndQuery",
    file: `${SVC}=${SERVICE}\nIOTHUB_DEVICE_ID=${"x".repeat(200)}\n`,
    names: "IOTHUB_DEVICE_ID",
    says: /not a valid device ID/,
  },
  // Options.
  {
    name: "an empty --ca-file",
    tool: "addTagsAndQuery",
    env: { [SVC]: SERVICE },
    args: ["--ca-file", ""],
    names: "--ca-file",
    says: /empty/,
  },
  {
    name: "an empty --device",
    tool: "addTagsAndQuery",
    env: { [SVC]: SERVICE },
    args: ["--device", ""],
    names: "--device",
    says: /not a valid device ID/,
  },
  {
    name: "--timeout that is not a number",
    tool: "reportConnectivity",
    env: { [DEV]: DEVICE },
    args: ["--timeout", "soon"],
    names: "--timeout",
    says: /./,
  },
  {
    name: "--page-size 0",
    tool: "addTagsAndQuery",
    env: { [SVC]: SERVICE },
    args: ["--page-size", "0"],
    names: "--page-size",
    says: /./,
  },
];

const tally = new Tally("bad configuration for the CLIs");
const dir = mkdtempSync(join(tmpdir(), "bad-config-"));
const cwd = join(dir, "cwd");
mkdirSync(cwd);
afterAll(() => {
  console.log(tally.line());
  rmSync(dir, { recursive: true, force: true });
});

describe.concurrent("bad input, counted: connection strings, env files and options for the CLIs", () => {
  /** Runs a built CLI with only the given IOTHUB_* settings, in an empty folder (no stray .env). */
  function runCli(c: Case, index: number) {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env))
      if (!k.startsWith("IOTHUB_") && !k.toUpperCase().includes("CONNECTION_STRING")) env[k] = v;
    const args = [...(c.args ?? [])];
    if (c.file !== undefined) {
      const path = join(dir, `case-${index}.env`);
      writeFileSync(path, c.file);
      args.push("--env-file", path);
    }
    return new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI[c.tool], ...args], { cwd, env: { ...env, ...c.env } });
      let out = "";
      let err = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (err += d));
      child.on("close", (code) => resolve({ code, out, err }));
    });
  }

  it.each(CASES.map((c, i) => ({ ...c, i })))("$name -> exit 2, names $names", async (c) => {
    await tally.run(c.name, async () => {
      const { code, out, err } = await runCli(c, c.i);
      const all = `${out}\n${err}`;
      expect(code, all).toBe(2);
      const error = /^error: (.*)$/m.exec(err)?.[1] ?? "";
      expect(error, all).toContain(c.names);
      expect(all).toMatch(c.says);
      expect(err).not.toMatch(/^\s+at \S/m);
      for (let i = 0; i + 8 <= KEY.length; i += 2) expect(all).not.toContain(KEY.slice(i, i + 8));
    });
  });
});

// Runs after every case above (suites run in order; only the cases inside the one above run concurrently).
describe("bad configuration: the count", () => {
  it("tried at least 30 cases and handled every one as expected", () => {
    expect(tally.tried).toBeGreaterThanOrEqual(30);
    expect(tally.handled).toBe(tally.tried);
  });
});
