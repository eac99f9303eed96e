import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type Server } from "node:tls";
import { generate } from "selfsigned";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEVICE_KEY, expectFailure, OWNER_KEY, run, start, startTestHub, type TestHub } from "./support.js";

/**
 * What a newcomer runs into, run as they would run it (the built tools as child processes, real hubs, real
 * files): trust failures named as such, where each setting came from, two apps with one device ID, help texts.
 */

const DAY = 86_400_000;

/** A CA and a server certificate it signed, for `hosts`, valid from `from` to `to`. */
async function makeChain(hosts: string[], from: Date, to: Date) {
  const ca = await generate([{ name: "commonName", value: "test CA" }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate: new Date(Date.now() - 10 * DAY),
    notAfterDate: new Date(Date.now() + 10 * DAY),
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const server = await generate([{ name: "commonName", value: hosts[0]! }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate: from,
    notAfterDate: to,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: hosts.map((value) => ({ type: 2 as const, value })) },
    ],
  });
  return { caPem: ca.cert, cert: server.cert, key: server.private };
}

/** A TLS server presenting `cert` that never gets past the handshake with a client that distrusts it. */
async function tlsServer(cert: string, key: string): Promise<{ server: Server; port: number }> {
  const server = createServer({ cert, key }, (socket) => socket.destroy());
  server.on("tlsClientError", () => {});
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { server, port: (server.address() as { port: number }).port };
}

describe("a newcomer's mistakes get messages that name the real cause", () => {
  let a: TestHub;
  let b: TestHub;
  const dir = mkdtempSync(join(tmpdir(), "newcomer-"));
  let files = 0;
  const envFile = (lines: string[]) => {
    const path = join(dir, `case-${files++}.env`);
    writeFileSync(path, `${lines.join("\n")}\n`);
    return path;
  };

  beforeAll(async () => {
    [a, b] = await Promise.all([startTestHub(), startTestHub()]);
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  describe("TLS trust failures are TLS problems, never a refused device or rejected keys", () => {
    it.each(["report-connectivity", "add-tags-and-query"])(
      "%s: IOTHUB_CA_FILE names another hub's CA (hub started in another folder): says exactly that",
      async (tool) => {
        // Hub b's connection strings, hub a's CA: what happens when `npx local-hub` runs in another folder.
        const file = envFile([
          `IOTHUB_CONNECTION_STRING=${b.hub.serviceConnectionString}`,
          `IOTHUB_DEVICE_CONNECTION_STRING=${b.hub.deviceConnectionString()}`,
          `IOTHUB_CA_FILE=${a.hub.caFile}`,
        ]);
        const result = await run(
          tool,
          tool === "report-connectivity" ? ["--once", "--env-file", file] : ["--env-file", file],
        );
        expectFailure(result, 1);
        const host = b.hub.hostName;
        expect(result.stderr).toContain(
          `error: TLS: the certificate of ${host} is not signed by the CA in IOTHUB_CA_FILE (${a.hub.caFile}) (CERT_SIGNATURE_FAILURE).\n`,
        );
        expect(result.stderr).toContain(
          `hint: The hub on ${host} is not the one whose CA is configured (it was started in another folder, or its ` +
            "data folder was recreated): set IOTHUB_CA_FILE to the file on the 'trust:' line that hub prints, or stop " +
            "it and run `npx local-hub` in this folder.\n",
        );
        expect(result.stderr).not.toMatch(/refused the device|rejected the credentials|copy its/);
      },
    );

    it.each(["report-connectivity", "add-tags-and-query"])(
      "%s: an expired certificate is reported as expired",
      async (tool) => {
        const chain = await makeChain(
          ["localhost"],
          new Date(Date.now() - 5 * DAY),
          new Date(Date.now() - DAY),
        );
        const { server, port } = await tlsServer(chain.cert, chain.key);
        try {
          writeFileSync(join(dir, "expired-ca.pem"), chain.caPem);
          const file = envFile([
            `IOTHUB_CONNECTION_STRING=HostName=localhost:${port};SharedAccessKeyName=iothubowner;SharedAccessKey=${OWNER_KEY}`,
            `IOTHUB_DEVICE_CONNECTION_STRING=HostName=localhost:${port};DeviceId=myDeviceId;SharedAccessKey=${DEVICE_KEY}`,
            "IOTHUB_CA_FILE=expired-ca.pem",
          ]);
          const args = tool === "report-connectivity" ? ["--once", "--timeout", "10"] : ["--timeout", "10"];
          const result = await run(tool, [...args, "--env-file", file]);
          expectFailure(result, 1);
          expect(result.stderr).toContain(
            `error: TLS: the certificate of localhost:${port} has expired (CERT_HAS_EXPIRED).\n`,
          );
          expect(result.stderr).toMatch(/^hint: Check this machine's clock/m);
          expect(result.stderr).not.toMatch(/refused the device|rejected the credentials/);
        } finally {
          server.close();
        }
      },
    );

    it.each(["report-connectivity", "add-tags-and-query"])(
      "%s: a certificate for another host name is reported as a host name mismatch",
      async (tool) => {
        const chain = await makeChain(
          ["hub.example.test"],
          new Date(Date.now() - DAY),
          new Date(Date.now() + DAY),
        );
        const { server, port } = await tlsServer(chain.cert, chain.key);
        try {
          writeFileSync(join(dir, "other-name-ca.pem"), chain.caPem);
          const file = envFile([
            `IOTHUB_CONNECTION_STRING=HostName=localhost:${port};SharedAccessKeyName=iothubowner;SharedAccessKey=${OWNER_KEY}`,
            `IOTHUB_DEVICE_CONNECTION_STRING=HostName=localhost:${port};DeviceId=myDeviceId;SharedAccessKey=${DEVICE_KEY}`,
            "IOTHUB_CA_FILE=other-name-ca.pem",
          ]);
          const args = tool === "report-connectivity" ? ["--once", "--timeout", "10"] : ["--timeout", "10"];
          const result = await run(tool, [...args, "--env-file", file]);
          expectFailure(result, 1);
          expect(result.stderr).toContain(
            `error: TLS: the certificate of localhost:${port} is for another host name (ERR_TLS_CERT_ALTNAME_INVALID).\n`,
          );
          const variable =
            tool === "report-connectivity" ? "IOTHUB_DEVICE_CONNECTION_STRING" : "IOTHUB_CONNECTION_STRING";
          expect(result.stderr).toMatch(new RegExp(`^hint: Check HostName in ${variable}: `, "m"));
        } finally {
          server.close();
        }
      },
    );
  });

  describe("--verbose says where each setting came from", () => {
    it("flags, environment variables (overriding the env file), env file and defaults, without the key", async () => {
      const file = envFile([
        "IOTHUB_CONNECTION_STRING=HostName=wrong.invalid;SharedAccessKeyName=iothubowner;SharedAccessKey=eA==",
        "IOTHUB_DEVICE_ID=myDeviceId",
        `IOTHUB_CA_FILE=${a.hub.caFile}`,
      ]);
      const result = await run(
        "add-tags-and-query",
        ["--verbose", "--no-update", "--plant", "Redmond44", "--env-file", file],
        {
          env: { IOTHUB_CONNECTION_STRING: a.hub.serviceConnectionString },
        },
      );
      expect(result.code, result.stderr).toBe(0);
      const lines = result.stderr.split("\n");
      const row = (name: string) => lines.find((l) => l.startsWith(`[verbose]   ${name} `)) ?? "";
      expect(lines).toContain("[verbose] Settings (flags > environment variables > env file > defaults):");
      expect(row("env file")).toMatch(new RegExp(`  ${file}  \\[--env-file\\]$`));
      expect(row("IOTHUB_CONNECTION_STRING")).toMatch(
        new RegExp(
          `  HostName=${a.hub.hostName};SharedAccessKeyName=iothubowner \\(key not shown\\)  \\[environment variable \\(overrides the value in ${file}\\)\\]$`,
        ),
      );
      expect(row("device ID")).toMatch(new RegExp(`  myDeviceId  \\[IOTHUB_DEVICE_ID, ${file}\\]$`));
      expect(row("IOTHUB_CA_FILE")).toMatch(new RegExp(`  ${a.hub.caFile}  \\[env file ${file}\\]$`));
      expect(row("--plant")).toMatch(/ {2}Redmond44 {2}\[flag\]$/);
      expect(row("--timeout")).toMatch(/ {2}30 {2}\[default\]$/);
      expect(result.stderr).not.toContain(OWNER_KEY);
    });

    it("report-connectivity too", async () => {
      const file = envFile([`IOTHUB_CA_FILE=${a.hub.caFile}`]);
      const result = await run("report-connectivity", ["--verbose", "--once", "--env-file", file], {
        env: { IOTHUB_DEVICE_CONNECTION_STRING: a.hub.deviceConnectionString() },
      });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toMatch(
        new RegExp(
          `^\\[verbose\\]   IOTHUB_DEVICE_CONNECTION_STRING  HostName=${a.hub.hostName};DeviceId=myDeviceId \\(key not shown\\)  \\[environment variable\\]$`,
          "m",
        ),
      );
      expect(result.stderr).toMatch(/^\[verbose\] {3}--type +cellular {2}\[default\]$/m);
      expect(result.stderr).not.toContain(DEVICE_KEY);
    });

    it("monitor-events too", async () => {
      const file = envFile([`IOTHUB_CA_FILE=${a.hub.caFile}`]);
      const endpoint = a.hub.eventHubConnectionString;
      const result = await run("monitor-events", ["--verbose", "--timeout", "0.5", "--env-file", file], {
        env: { EVENTHUB_CONNECTION_STRING: endpoint },
      });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toContain(
        "[verbose] Settings (flags > environment variables > env file > defaults):",
      );
      const shown = endpoint.replace(/;SharedAccessKey=[^;]*/, "").replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      expect(result.stderr).toMatch(
        new RegExp(
          `^\\[verbose\\]   EVENTHUB_CONNECTION_STRING  ${shown} \\(key not shown\\)  \\[environment variable\\]$`,
          "m",
        ),
      );
      expect(result.stderr).toMatch(
        new RegExp(`^\\[verbose\\]   IOTHUB_CA_FILE +${a.hub.caFile}  \\[env file ${file}\\]$`, "m"),
      );
      expect(result.stderr).toMatch(/^\[verbose\] {3}--timeout +0\.5 {2}\[flag\]$/m);
      expect(result.stderr).toMatch(/^\[verbose\] {3}--start +latest {2}\[default\]$/m);
      expect(result.stderr).not.toContain(/SharedAccessKey=([^;]*)/.exec(endpoint)![1]);
    });

    it("a bad value from an exported variable that overrides .env says so", async () => {
      const file = envFile([`IOTHUB_CONNECTION_STRING=${a.hub.serviceConnectionString}`]);
      const result = await run("add-tags-and-query", ["--env-file", file], {
        env: { IOTHUB_CONNECTION_STRING: "HostName=localhost:1;SharedAccessKeyName=iothubowner" },
      });
      expectFailure(result, 2);
      expect(result.stderr).toMatch(
        new RegExp(
          `^error: IOTHUB_CONNECTION_STRING \\(from an exported environment variable, which overrides the value in ${file}\\) `,
          "m",
        ),
      );
    });
  });

  describe("two device apps with the same device ID", () => {
    it("the one knocked off says that another client is connected as this device; the other keeps running", async () => {
      const file = envFile([
        `IOTHUB_DEVICE_CONNECTION_STRING=${a.hub.deviceConnectionString()}`,
        `IOTHUB_CA_FILE=${a.hub.caFile}`,
      ]);
      // One app runs in a terminal; the same app is started again in another one.
      const first = start("report-connectivity", ["--timeout", "10", "--env-file", file], {
        timeoutMs: 120_000,
      });
      try {
        await first.waitForStdout(/Waiting for desired property updates/, 30_000);
        const again = start("report-connectivity", ["--timeout", "10", "--env-file", file], {
          timeoutMs: 120_000,
        });
        try {
          const { result: ended, loser } = await Promise.race([
            first.exited.then((result) => ({ result, loser: first })),
            again.exited.then((result) => ({ result, loser: again })),
          ]);
          const survivor = loser === first ? again : first;
          expectFailure(ended, 1);
          // The one error line names the cause: not "connection closed", not "did not finish within 10 s".
          expect(ended.stderr.match(/^error: .*/gm)).toHaveLength(1);
          expect(ended.stderr).toMatch(
            new RegExp(
              `^error: Another client is (probably )?connected as device 'myDeviceId' to ${a.hub.hostName}: IoT Hub ` +
                "allows one connection per device, so each connection closes the other \\(the connection was closed ",
              "m",
            ),
          );
          expect(ended.stderr).toMatch(/^hint: Stop the other app using this device/m);
          // The other one is left alone: it is connected and prints a desired update made now.
          await survivor.waitForStdout(/Waiting for desired property updates/, 30_000);
          await a.registry.updateTwin("myDeviceId", { properties: { desired: { winner: true } } }, "*");
          await survivor.waitForStdout(
            /Desired properties changed \(version \d+\): \{"winner":true\}/,
            30_000,
          );
          // One "Reconnected." line per reconnection warning, never more.
          const count = (re: RegExp) => survivor.stderr().match(re)?.length ?? 0;
          expect(count(/^Reconnected\.$/gm)).toBeLessThanOrEqual(count(/^warning: /gm));
          survivor.child.kill("SIGINT");
          expect((await survivor.exited).code).toBe(0);
        } finally {
          again.child.kill("SIGKILL");
        }
      } finally {
        first.child.kill("SIGKILL");
      }
    }, 120_000);
  });

  describe("--help of the tools", () => {
    it.each(["add-tags-and-query", "report-connectivity", "monitor-events", "local-hub"])(
      "%s: same wording, numeric defaults shown as numbers, ranges, exit codes, the settings it reads",
      async (tool) => {
        const result = await run(tool, ["--help"]);
        expect(result.code).toBe(0);
        const help = result.stdout;
        expect(help).toContain(`Usage: ${tool} [options]`);
        expect(help).toContain("-h, --help");
        expect(help).toContain("print this help and exit");
        expect(help).toContain("print the version and exit");
        expect(help).toMatch(/^Exit codes: 0 .*, 1 .*, 2 usage/m);
        expect(help).not.toMatch(/\(default: "\d+(\.\d+)?"\)/);
        if (tool === "local-hub") {
          expect(help).toContain("(default: 18883)");
          expect(help).toContain("0 to 65535");
          expect(help).toContain("--host-name <name>");
          expect(help).toContain("Settings: only these flags");
        } else {
          if (tool === "monitor-events")
            expect(help).toMatch(/0 to 604800[^(]*\(0: run[^)]*\)\s+\(default: 0\)/);
          else expect(help).toMatch(/\(0\.1 to 3600\)\s+\(default: 30\)/);
          expect(help).toContain("Settings (flags > environment variables > env file > defaults):");
          expect(help).toContain("IOTHUB_CA_FILE");
          expect(help).toContain("Run it in the project folder (where .env is), after npm install.");
        }
        if (tool === "add-tags-and-query") {
          expect(help).toContain("1 to 1000");
          expect(help).toMatch(/\(0 to 3600\)[\s\S]*\(default: 0\)/);
        }
      },
    );
  });
});
