import type { IncomingMessage } from "node:http";
import { get, type RequestOptions } from "node:https";
import { rootCertificates } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseServiceConnectionString } from "../../src/config/index.js";
import { describeFailure, TimeoutError, withTimeout } from "../../src/sdk/errors.js";
import {
  createRegistry,
  HostPortAgent,
  needsAdapter,
  splitHostPort,
  trustedCas,
} from "../../src/sdk/index.js";
import { closedPort, startTestHub, type TestHub } from "../cli/support.js";

describe("splitHostPort and needsAdapter", () => {
  it.each([
    ["myhub.azure-devices.net", "myhub.azure-devices.net", undefined],
    ["localhost:18883", "localhost", 18883],
    ["127.0.0.1:443", "127.0.0.1", 443],
    ["::1", "::1", undefined],
  ])("%s", (hostName, host, port) => {
    expect(splitHostPort(hostName)).toEqual({ host, port });
  });

  it("adapts only for a port or a CA", () => {
    expect(needsAdapter("myhub.azure-devices.net", undefined)).toBe(false);
    expect(needsAdapter("localhost:18883", undefined)).toBe(true);
    expect(needsAdapter("myhub.azure-devices.net", "-----BEGIN CERTIFICATE-----")).toBe(true);
  });

  it("adds an extra CA to Node's roots instead of replacing them", () => {
    const extra = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
    const bundle = trustedCas(`${extra}\n`);
    expect(bundle.endsWith(`${extra}\n`)).toBe(true);
    expect(bundle.match(/-----BEGIN CERTIFICATE-----/g)!.length).toBe(rootCertificates.length + 1);
  });

  it("leaves a plain Azure connection string to the SDK as it is", async () => {
    const cs = parseServiceConnectionString(
      "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0LWtleQ==",
      { name: "test" },
    );
    const clients = await createRegistry(cs);
    expect(clients.adapted).toBe(false);
    clients.close();
  });
});

function status(options: RequestOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    get(options, (response: IncomingMessage) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    }).on("error", reject);
  });
}

describe("HostPortAgent against the local hub", () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub();
  });
  afterAll(async () => {
    await t.close();
  });

  it("reaches host:port with the hub's CA (the hub then asks for credentials)", async () => {
    const agent = new HostPortAgent({ ca: t.hub.caPem });
    try {
      expect(
        await status({ host: t.hub.hostName, path: "/statistics/devices?api-version=2021-04-12", agent }),
      ).toBe(401);
    } finally {
      agent.destroy();
    }
  });

  it("is needed: without it https.request looks up a host literally named host:port", async () => {
    await expect(status({ host: t.hub.hostName, path: "/", ca: t.hub.caPem })).rejects.toMatchObject({
      code: expect.stringMatching(/ENOTFOUND|EAI_AGAIN/),
    });
  });

  it("still verifies the certificate: without the CA the hub is not trusted", async () => {
    const agent = new HostPortAgent();
    try {
      const error = await status({ host: t.hub.hostName, path: "/", agent }).catch((e: unknown) => e);
      expect(describeFailure(error, { side: "service", hostName: t.hub.hostName, variable: "X" }).kind).toBe(
        "tls",
      );
    } finally {
      agent.destroy();
    }
  });
});

describe("describeFailure", () => {
  const context = { side: "service" as const, hostName: "localhost:1", variable: "IOTHUB_CONNECTION_STRING" };

  it("recognises a real refused connection", async () => {
    const port = await closedPort();
    const agent = new HostPortAgent();
    const error = await status({ host: `localhost:${port}`, path: "/", agent }).catch((e: unknown) => e);
    agent.destroy();
    const failure = describeFailure(error, context);
    expect(failure.kind).toBe("refused");
    expect(failure.message).toContain("ECONNREFUSED");
    expect(failure.hint).toContain("IOTHUB_CONNECTION_STRING");
  });

  it("looks inside the device SDK's first-connection wrapper, which calls everything 'Not authorized'", () => {
    // The shape azure-iot-device-mqtt gives a refused TLS handshake on its first connection.
    const inner = new Error(
      "Failure on first connection (Not authorized): self-signed certificate in certificate chain",
    );
    const error = Object.assign(new Error(`mqtt.js returned ${inner.message} error`), {
      name: "UnauthorizedError",
      transportError: inner,
    });
    const failure = describeFailure(error, {
      ...context,
      side: "device",
      variable: "IOTHUB_DEVICE_CONNECTION_STRING",
    });
    expect(failure.kind).toBe("tls");
    expect(failure.message).toContain("SELF_SIGNED_CERT_IN_CHAIN");
    expect(failure.hint).toContain("IOTHUB_CA_FILE");
  });

  it.each([
    ["certificate signature failure", "CERT_SIGNATURE_FAILURE"],
    ["self-signed certificate", "DEPTH_ZERO_SELF_SIGNED_CERT"],
    ["unable to get local issuer certificate", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"],
    ["certificate has expired", "CERT_HAS_EXPIRED"],
    [
      "Hostname/IP does not match certificate's altnames: Host: a. is not in the cert's altnames",
      "ERR_TLS_CERT_ALTNAME_INVALID",
    ],
  ])(
    "a device-side '%s' wrapped as UnauthorizedError is a TLS failure (%s), not a refused device",
    (text, code) => {
      const error = Object.assign(new Error(`Failure on first connection (Not authorized): ${text}`), {
        name: "UnauthorizedError",
      });
      const failure = describeFailure(error, {
        ...context,
        side: "device",
        variable: "IOTHUB_DEVICE_CONNECTION_STRING",
      });
      expect(failure.kind).toBe("tls");
      expect(failure.message).toContain(`(${code})`);
      expect(failure.message).not.toContain("refused the device");
    },
  );

  it("reports timeouts from withTimeout", async () => {
    const error = await withTimeout(new Promise(() => {}), 0.01, "Waiting").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(describeFailure(error, context).message).toBe(
      "Waiting did not finish within 0.01 s (hub localhost:1).",
    );
  });

  it("falls back to the error's own words for anything else", () => {
    const failure = describeFailure(new RangeError("odd"), context);
    expect(failure).toMatchObject({ kind: "unknown", message: "RangeError: odd" });
  });
});
