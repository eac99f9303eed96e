import { EventHubConsumerClient, type ReceivedEventData } from "@azure/event-hubs";
import { Message } from "azure-iot-device";
import rhea, { type Connection } from "rhea";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { makeToken } from "../../../src/hub/auth/sas.js";
import { DEV_POLICIES } from "../../../src/hub/index.js";
import { request } from "../amqp/support.js";
import { connectDevice, startTestHub } from "../support.js";

type Hub = Awaited<ReturnType<typeof startTestHub>>;
const service = DEV_POLICIES.find((p) => p.name === "service")!;
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

/** rhea as a client over a WebSocket (its own websocket_connect with the ws library), trusting the hub's CA. */
function amqpOverWs(url: string, caPem: string): Promise<Connection> {
  const container = rhea.create_container();
  const ws = container.websocket_connect(WebSocket as never);
  return new Promise((resolve, reject) => {
    const connection = container.connect({
      connection_details: ws(url, ["AMQPWSB10"], { ca: caPem }),
      reconnect: false,
      username: "service",
    } as unknown as rhea.ConnectionOptions);
    connection.once("connection_open", () => resolve(connection));
    connection.once("disconnected", (ctx) => reject(ctx.error ?? new Error("disconnected")));
    connection.on("error", () => {});
  });
}

async function putToken(connection: Connection, audience: string): Promise<unknown> {
  const answer = await request(connection, "$cbs", {
    body: makeToken(service.primaryKey, audience, inAnHour(), "service"),
    application_properties: {
      operation: "put-token",
      type: "servicebus.windows.net:sastoken",
      name: audience,
    },
  });
  return answer.application_properties?.["status-code"];
}

describe("AMQP over WebSockets (subprotocol AMQPWSB10)", () => {
  let hub: Hub;
  let device: Awaited<ReturnType<typeof connectDevice>>;
  beforeAll(async () => {
    hub = await startTestHub({ inMemory: true });
    device = await connectDevice(hub.deviceConnectionString(), hub.caPem);
    const m = new Message(JSON.stringify({ n: 1 }));
    m.messageId = "over-ws";
    await device.sendEvent(m);
  });
  afterAll(async () => {
    await device?.close();
    await hub?.cleanup();
  });

  it("rhea over wss: $servicebus/websocket and $iothub/websocket on the HTTPS port, $servicebus/websocket on the AMQP port", async () => {
    const urls = [
      `wss://localhost:${hub.port}/$servicebus/websocket`,
      `wss://localhost:${hub.port}/$iothub/websocket`,
      `wss://localhost:${hub.amqpPort}/$servicebus/websocket`,
    ];
    for (const url of urls) {
      const connection = await amqpOverWs(url, hub.caPem);
      try {
        // An Event Hubs audience: answered 202 Accepted, as Event Hubs does.
        expect(await putToken(connection, `sb://localhost:${hub.amqpPort}/${hub.eventHubName}`), url).toBe(
          202,
        );
      } finally {
        connection.close();
      }
    }
  });

  it("the AMQP port answers MQTT's subprotocol with 400 and other HTTP requests with 404", async () => {
    const refused = await new Promise<number>((resolve, reject) => {
      const socket = new WebSocket(`wss://localhost:${hub.amqpPort}/$iothub/websocket`, ["mqtt"], {
        ca: hub.caPem,
      });
      socket.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      socket.once("open", () => reject(new Error("accepted")));
      socket.once("error", reject);
    });
    expect(refused).toBe(400);
    const plain = await fetchStatus(hub.amqpPort, hub.caPem);
    expect(plain).toBe(404);
  });

  /** The unmodified consumer with webSocketOptions; `customEndpointAddress` optional. */
  async function readOne(customEndpointAddress?: string) {
    const client = new EventHubConsumerClient("$Default", hub.eventHubConnectionString, {
      webSocketOptions: { webSocket: WebSocket, webSocketConstructorOptions: { ca: hub.caPem } },
      retryOptions: { maxRetries: 0, timeoutInMs: 20_000 },
      ...(customEndpointAddress ? { customEndpointAddress } : {}),
    });
    try {
      const properties = await client.getEventHubProperties();
      expect(properties.partitionIds).toEqual(["0", "1", "2", "3"]);
      const received = await new Promise<ReceivedEventData>((resolve, reject) => {
        const subscription = client.subscribe(
          {
            processEvents: async (events) => {
              if (events.length > 0) {
                await subscription.close();
                resolve(events[0]);
              }
            },
            processError: async (error) => reject(error),
          },
          { startPosition: { offset: "-1" }, maxWaitTimeInSeconds: 1 },
        );
      });
      expect(received.body).toEqual({ n: 1 });
      expect(received.messageId).toBe("over-ws");
    } finally {
      await client.close();
    }
  }

  it("@azure/event-hubs with webSocketOptions and the hub's connection string, unmodified (the AMQP port)", async () => {
    await readOne();
  }, 60_000);

  it("@azure/event-hubs with webSocketOptions and customEndpointAddress on the HTTPS port", async () => {
    await readOne(`https://localhost:${hub.port}`);
  }, 60_000);
});

function fetchStatus(port: number, caPem: string): Promise<number> {
  return new Promise((resolve, reject) => {
    import("node:https").then(({ request }) => {
      const req = request({ host: "localhost", port, path: "/", ca: caPem }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end();
    }, reject);
  });
}
