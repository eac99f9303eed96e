import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  closedPort,
  DEVICE_KEY,
  expectFailure,
  keyFor,
  OWNER_KEY,
  registerDevice,
  run,
  startTestHub,
  type TestHub,
  tcpServer,
} from "./support.js";

const WRONG_KEY = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktMDE=";

describe("exit codes and failure messages", () => {
  let t: TestHub;
  /** Env-file lines for a service string with this host, policy and key (and the hub's CA unless told). */
  let service: (opts?: { host?: string; policy?: string; key?: string; ca?: boolean }) => string[];
  let device: (opts?: { host?: string; id?: string; key?: string; ca?: boolean }) => string[];
  let files = 0;

  beforeAll(async () => {
    t = await startTestHub();
    const hubHost = t.hub.hostName;
    service = ({ host = hubHost, policy = "iothubowner", key = OWNER_KEY, ca = true } = {}) => [
      `IOTHUB_CONNECTION_STRING=HostName=${host};SharedAccessKeyName=${policy};SharedAccessKey=${key}`,
      ...(ca ? [`IOTHUB_CA_FILE=${t.hub.caFile}`] : []),
    ];
    device = ({ host = hubHost, id = "myDeviceId", key = DEVICE_KEY, ca = true } = {}) => [
      `IOTHUB_DEVICE_CONNECTION_STRING=HostName=${host};DeviceId=${id};SharedAccessKey=${key}`,
      ...(ca ? [`IOTHUB_CA_FILE=${t.hub.caFile}`] : []),
    ];
  });
  afterAll(async () => {
    await t.close();
  });

  const envFile = (lines: string[]) => ["--env-file", t.writeEnv(`case-${files++}.env`, lines)];
  const backEnd = (lines: string[], ...args: string[]) =>
    run("add-tags-and-query", [...args, ...envFile(lines)]);
  const deviceApp = (lines: string[], ...args: string[]) =>
    run("report-connectivity", ["--once", ...args, ...envFile(lines)]);

  describe.concurrent("0: help and version", () => {
    it.each([
      ["add-tags-and-query", "--help"],
      ["add-tags-and-query", "-h"],
      ["report-connectivity", "--help"],
      ["report-connectivity", "-h"],
    ])("%s %s prints usage with the exit codes and exits 0", async (tool, flag) => {
      const result = await run(tool, [flag]);
      expect(result.code).toBe(0);
      expect(result.stdout).toContain(`Usage: ${tool} [options]`);
      expect(result.stdout).toContain("--env-file <path>");
      expect(result.stdout).toMatch(
        /Exit codes: 0 success.*, 1 hub or runtime failure, 2 usage or configuration error/,
      );
    });

    it.each(["add-tags-and-query", "report-connectivity"])(
      "%s --version prints the package version",
      async (tool) => {
        const result = await run(tool, ["--version"]);
        expect(result.code).toBe(0);
        expect(result.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
      },
    );
  });

  describe.concurrent("2: usage errors", () => {
    it.each<[string, string[], RegExp]>([
      ["add-tags-and-query", ["--bogus"], /unknown option '--bogus'/],
      ["add-tags-and-query", ["extra"], /too many arguments/],
      ["add-tags-and-query", ["--plant"], /option '--plant <name>' argument missing/],
      ["add-tags-and-query", ["--page-size", "abc"], /--page-size must be a whole number from 1 to 1000/],
      ["add-tags-and-query", ["--page-size", "0"], /--page-size must be a whole number/],
      ["add-tags-and-query", ["--wait", "-1"], /--wait must be a number of seconds/],
      ["add-tags-and-query", ["--timeout", "0"], /--timeout must be a number of seconds/],
      ["add-tags-and-query", ["--plant", "Red'mond"], /--plant contains a quote/],
      ["add-tags-and-query", ["--connectivity", " "], /--connectivity is empty/],
      ["add-tags-and-query", ["--region", "x".repeat(200)], /--region is longer than 128/],
      ["add-tags-and-query", ["--device", "no/slashes"], /--device is not a valid device ID/],
      ["report-connectivity", ["--bogus"], /unknown option '--bogus'/],
      ["report-connectivity", ["extra"], /too many arguments/],
      ["report-connectivity", ["--type", ""], /--type is empty/],
      ["report-connectivity", ["--type", 'a"b'], /--type contains a quote/],
      ["report-connectivity", ["--timeout", "soon"], /--timeout must be a number of seconds/],
    ])("%s %j exits 2", async (tool, args, pattern) => {
      const result = await run(tool, ["--env-file", t.envFile, ...args]);
      expectFailure(result, 2);
      expect(result.stderr).toMatch(pattern);
      expect(result.stdout).toBe("");
    });
  });

  describe.concurrent("1: hub and runtime failures", () => {
    it("an unknown device: DeviceNotFoundError", async () => {
      const result = await backEnd(service(), "--device", "noSuchDevice");
      expectFailure(result, 1);
      expect(result.stderr).toMatch(/^error: Device 'noSuchDevice' is not registered .*DeviceNotFoundError/m);
      expect(result.stderr).toMatch(/^hint: Register it/m);
    });

    it("a wrong service key: UnauthorizedError", async () => {
      const result = await backEnd(service({ key: WRONG_KEY }));
      expectFailure(result, 1, [OWNER_KEY, WRONG_KEY]);
      expect(result.stderr).toMatch(/UnauthorizedError, HTTP 401/);
      expect(result.stderr).toMatch(/^hint: Check the policy name and key in IOTHUB_CONNECTION_STRING/m);
    });

    it("a policy without registry read (the 'service' policy): unauthorized", async () => {
      const serviceKey = /SharedAccessKey=([^;]+)/.exec(t.hub.connectionStringFor("service"))![1]!;
      const result = await backEnd(service({ policy: "service", key: serviceKey }));
      expectFailure(result, 1, [OWNER_KEY, serviceKey]);
      expect(result.stderr).toMatch(/registry read and service connect/);
    });

    it("a wrong device key: unauthorized", async () => {
      const result = await deviceApp(device({ key: WRONG_KEY }));
      expectFailure(result, 1, [DEVICE_KEY, WRONG_KEY]);
      expect(result.stderr).toMatch(/refused the device 'myDeviceId' \(UnauthorizedError/);
      expect(result.stderr).toMatch(/^hint: Check IOTHUB_DEVICE_CONNECTION_STRING/m);
    });

    it("a device the hub does not know: unauthorized", async () => {
      const result = await deviceApp(device({ id: "ghost", key: keyFor("ghost") }));
      expectFailure(result, 1, [DEVICE_KEY, keyFor("ghost")]);
      expect(result.stderr).toMatch(/refused the device 'ghost'/);
      expect(result.stderr).toMatch(/the device must exist in this hub/);
    });

    it("a disabled device: unauthorized", async () => {
      await registerDevice(t.registry, "disabledDevice");
      const { responseBody } = await t.registry.get("disabledDevice");
      await t.registry.update({ ...responseBody, status: "disabled" });
      const result = await deviceApp(device({ id: "disabledDevice", key: keyFor("disabledDevice") }));
      expectFailure(result, 1, [keyFor("disabledDevice")]);
      expect(result.stderr).toMatch(/a disabled device is refused too/);
    });

    it.each(["back end", "device"])("an unreachable hub (%s): ECONNREFUSED", async (side) => {
      const host = `localhost:${await closedPort()}`;
      const result = side === "device" ? await deviceApp(device({ host })) : await backEnd(service({ host }));
      expectFailure(result, 1);
      expect(result.stderr).toMatch(
        new RegExp(`^error: Cannot connect to ${host}: connection refused \\(ECONNREFUSED\\)`, "m"),
      );
      expect(result.stderr).toMatch(/^hint: Is the hub running\?/m);
    });

    it.each(["back end", "device"])("a host name that does not resolve (%s): ENOTFOUND", async (side) => {
      const host = "no-such-hub.invalid";
      const result = side === "device" ? await deviceApp(device({ host })) : await backEnd(service({ host }));
      expectFailure(result, 1);
      expect(result.stderr).toMatch(
        /^error: Cannot resolve the host name of no-such-hub\.invalid \((ENOTFOUND|EAI_AGAIN)\)/m,
      );
    });

    it.each(["back end", "device"])(
      "a hub certificate that is not trusted (%s): hint to set IOTHUB_CA_FILE",
      async (side) => {
        const result =
          side === "device" ? await deviceApp(device({ ca: false })) : await backEnd(service({ ca: false }));
        expectFailure(result, 1);
        expect(result.stderr).toMatch(
          /^error: TLS: the certificate of localhost:\d+ is not trusted \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)/m,
        );
        expect(result.stderr).toMatch(/^hint: Set IOTHUB_CA_FILE to the local hub's CA/m);
      },
    );

    it.each(["back end", "device"])("a port that does not speak TLS (%s)", async (side) => {
      const server = await tcpServer("plain");
      try {
        const host = `localhost:${server.port}`;
        const result =
          side === "device" ? await deviceApp(device({ host })) : await backEnd(service({ host }));
        expectFailure(result, 1);
        expect(result.stderr).toMatch(/does not speak TLS on that port/);
      } finally {
        await server.close();
      }
    });

    it.each(["back end", "device"])("a hub that never answers (%s): --timeout", async (side) => {
      const server = await tcpServer("silent");
      try {
        const host = `localhost:${server.port}`;
        const started = Date.now();
        const result =
          side === "device"
            ? await deviceApp(device({ host }), "--timeout", "1")
            : await backEnd(service({ host }), "--timeout", "1");
        expectFailure(result, 1);
        expect(result.stderr).toMatch(/did not finish within 1 s/);
        expect(Date.now() - started).toBeLessThan(15_000);
      } finally {
        await server.close();
      }
    });

    it("--verbose adds the stack trace, still without secrets", async () => {
      const result = await backEnd(service({ key: WRONG_KEY }), "--verbose");
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^\s+at \S/m);
      for (const secret of [OWNER_KEY, WRONG_KEY]) expect(result.stderr).not.toContain(secret.slice(0, 16));
    });
  });
});
