import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeToken } from "../../../src/hub/auth/sas.js";
import { DEV_POLICIES } from "../../../src/hub/index.js";
import { startTestHub } from "../support.js";
import { amqpConnect, request } from "./support.js";

type Hub = Awaited<ReturnType<typeof startTestHub>>;
let hub: Hub;
beforeAll(async () => {
  hub = await startTestHub({ inMemory: true });
});
afterAll(() => hub.cleanup());

const policy = (name: string) => DEV_POLICIES.find((p) => p.name === name)!;
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

describe("$cbs put-token", () => {
  it("accepts a service policy token for this hub (202 for an Event Hubs audience) and refuses a wrong key or another hub (401)", async () => {
    const connection = await amqpConnect(hub, { username: "service" });
    try {
      const audience = `sb://localhost:${hub.amqpPort}/localhost`;
      const put = (token: string) =>
        request(connection, "$cbs", {
          body: token,
          application_properties: {
            operation: "put-token",
            type: "servicebus.windows.net:sastoken",
            name: audience,
          },
        });
      const ok = await put(makeToken(policy("service").primaryKey, audience, inAnHour(), "service"));
      expect(ok.application_properties?.["status-code"]).toBe(202);
      expect(ok.correlation_id).toBe("m1");
      const wrongKey = await put(
        makeToken(policy("iothubowner").primaryKey, audience, inAnHour(), "service"),
      );
      expect(wrongKey.application_properties?.["status-code"]).toBe(401);
      const otherHub = await put(
        makeToken(
          policy("service").primaryKey,
          "sb://example.servicebus.windows.net/x",
          inAnHour(),
          "service",
        ),
      );
      expect(otherHub.application_properties?.["status-code"]).toBe(401);
      const expired = await put(makeToken(policy("service").primaryKey, audience, 1000, "service"));
      expect(expired.application_properties?.["status-code"]).toBe(401);
      const garbage = await put("not a token");
      expect(garbage.application_properties?.["status-code"]).toBe(401);
    } finally {
      connection.close();
    }
  });

  it("is also served on the HTTPS/MQTT port, where azure-iothub connects AMQP (amqps://<HostName>); IoT Hub audiences get 200", async () => {
    const connection = await amqpConnect({ ...hub, amqpPort: hub.port });
    try {
      const audience = `localhost:${hub.port}`;
      const answer = await request(connection, "$cbs", {
        body: makeToken(policy("service").primaryKey, audience, inAnHour(), "service"),
        application_properties: {
          operation: "put-token",
          type: "servicebus.windows.net:sastoken",
          name: audience,
        },
      });
      expect(answer.application_properties?.["status-code"]).toBe(200);
    } finally {
      connection.close();
    }
  });

  it("refuses another operation or token type with 400", async () => {
    const connection = await amqpConnect(hub);
    try {
      const answer = await request(connection, "$cbs", {
        body: "x",
        application_properties: {
          operation: "delete-token",
          type: "servicebus.windows.net:sastoken",
          name: "a",
        },
      });
      expect(answer.application_properties?.["status-code"]).toBe(400);
    } finally {
      connection.close();
    }
  });

  it("detaches the requests of a client that never grants credit for the answers", async () => {
    const connection = await amqpConnect(hub);
    try {
      const condition = await new Promise<string>((resolve) => {
        connection.open_receiver({
          source: { address: "$cbs" },
          target: { address: "stingy" },
          credit_window: 0,
        });
        const sender = connection.open_sender({ target: { address: "$cbs" } });
        sender.on("sender_error", (ctx) => resolve((ctx.sender.error as { condition: string }).condition));
        sender.on("sendable", () => {
          while (sender.sendable())
            sender.send({
              reply_to: "stingy",
              body: "x",
              application_properties: {
                operation: "put-token",
                type: "servicebus.windows.net:sastoken",
                name: "a",
              },
            });
        });
      });
      expect(condition).toBe("amqp:resource-limit-exceeded");
    } finally {
      connection.close();
    }
  });

  it("refuses a link to an unknown address with amqp:not-found", async () => {
    const connection = await amqpConnect(hub);
    try {
      const error = await new Promise<{ condition: string }>((resolve) => {
        const r = connection.open_receiver({ source: { address: "nowhere" } });
        r.on("receiver_error", (ctx) => resolve(ctx.receiver.error as { condition: string }));
      });
      expect(error.condition).toBe("amqp:not-found");
    } finally {
      connection.close();
    }
  });

  it("accepts SASL PLAIN with a SAS token as password and refuses a bad one", async () => {
    const host = `localhost:${hub.amqpPort}`;
    const good = await amqpConnect(hub, {
      username: "service@sas.root.localhost",
      password: makeToken(policy("service").primaryKey, host, inAnHour(), "service"),
    });
    good.close();
    await expect(
      amqpConnect(hub, {
        username: "service@sas.root.localhost",
        password: "SharedAccessSignature sr=x&sig=y&se=1",
      }),
    ).rejects.toBeDefined();
  });
});

describe("the AMQP port", () => {
  it("defaults to port + 1, and to a free port when that one is taken", async () => {
    const { createServer } = await import("node:net");
    const listenOn = (port: number) =>
      new Promise<import("node:net").Server>((resolve, reject) => {
        const server = createServer();
        server.once("error", reject);
        server.listen(port, "127.0.0.1", () => resolve(server));
      });
    // A free port P whose neighbour P + 1 this test holds.
    let port = 0;
    let blocker: import("node:net").Server | undefined;
    while (!blocker) {
      const probe = await listenOn(0);
      port = (probe.address() as { port: number }).port;
      await new Promise((r) => probe.close(r));
      blocker = await listenOn(port + 1).catch(() => undefined);
    }
    const hub2 = await startTestHub({ inMemory: true, port });
    try {
      expect(hub2.port).toBe(port);
      expect(hub2.amqpPort).not.toBe(port + 1);
      const c = await amqpConnect(hub2);
      c.close();
    } finally {
      await hub2.cleanup();
      blocker.close();
    }
  });
});
