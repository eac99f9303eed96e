import rhea, { type Connection, type Receiver } from "rhea";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeToken } from "../../../src/hub/auth/sas.js";
import { DEV_POLICIES } from "../../../src/hub/index.js";
import { startTestHub } from "../support.js";
import { amqpConnect, request } from "./support.js";

type Hub = Awaited<ReturnType<typeof startTestHub>>;
let hub: Hub;
let connection: Connection;
const service = DEV_POLICIES.find((p) => p.name === "service")!;

beforeAll(async () => {
  hub = await startTestHub({ inMemory: true });
  connection = await amqpConnect(hub, { username: "service" });
  const audience = `sb://localhost:${hub.amqpPort}/${hub.eventHubName}`;
  const answer = await request(connection, "$cbs", {
    body: makeToken(service.primaryKey, audience, Math.floor(Date.now() / 1000) + 3600, "service"),
    application_properties: {
      operation: "put-token",
      type: "servicebus.windows.net:sastoken",
      name: audience,
    },
  });
  expect(answer.application_properties?.["status-code"]).toBe(202);
});
afterAll(async () => {
  connection?.close();
  await hub?.cleanup();
});

const address = (partition: string, group = "$Default") =>
  `${hub.eventHubName}/ConsumerGroups/${group}/Partitions/${partition}`;

/** Attaches a receiver; resolves "open" once attached, or the error condition it was closed with. */
function attach(
  source: Record<string, unknown>,
  properties?: Record<string, unknown>,
): { receiver: Receiver; outcome: Promise<string>; closed: Promise<string> } {
  const receiver = connection.open_receiver({ source, properties, credit_window: 0 } as never);
  let closedWith: (c: string) => void = () => {};
  const closed = new Promise<string>((r) => {
    closedWith = r;
  });
  const outcome = new Promise<string>((resolve) => {
    receiver.on("receiver_open", () => {
      // The hub attaches and then detaches a refused link: wait a moment for a detach.
      setTimeout(() => resolve(receiver.is_open() ? "open" : "closed"), 200);
    });
    receiver.on("receiver_error", (ctx) => {
      const c = (ctx.receiver.error as { condition: string }).condition;
      closedWith(c);
      resolve(c);
    });
  });
  return { receiver, outcome, closed };
}

describe("Event Hubs receiver links (raw AMQP)", () => {
  it("refuses a partition out of range and an unsupported filter", async () => {
    expect(await attach({ address: address("9") }).outcome).toBe("com.microsoft:argument-out-of-range");
    const filter = {
      "apache.org:selector-filter:string": rhea.types.wrap_described(
        "amqp.annotation.x-opt-offset < '5'",
        0x468c00000004,
      ),
    };
    expect(await attach({ address: address("0"), filter }).outcome).toBe("com.microsoft:argument-error");
    const good = {
      "apache.org:selector-filter:string": rhea.types.wrap_described(
        "amqp.annotation.x-opt-offset > '-1'",
        0x468c00000004,
      ),
    };
    const accepted = attach({ address: address("0"), filter: good });
    expect(await accepted.outcome).toBe("open");
    accepted.receiver.close();
  });

  it("refuses a link when no put-token covers its address", async () => {
    const other = await amqpConnect(hub);
    try {
      const error = await new Promise<string>((resolve) => {
        const r = other.open_receiver({ source: { address: address("0") } });
        r.on("receiver_error", (ctx) => resolve((ctx.receiver.error as { condition: string }).condition));
      });
      expect(error).toBe("amqp:unauthorized-access");
    } finally {
      other.close();
    }
  });

  it("allows 5 readers per partition and consumer group, and a higher epoch takes the partition", async () => {
    const readers = Array.from({ length: 5 }, () => attach({ address: address("1") }));
    for (const r of readers) expect(await r.outcome).toBe("open");
    expect(await attach({ address: address("1") }).outcome).toBe("amqp:resource-limit-exceeded");
    // Another consumer group is counted separately... only $Default exists here, so another partition.
    expect(await attach({ address: address("2") }).outcome).toBe("open");

    const owner = attach({ address: address("1") }, { "com.microsoft:epoch": 5 });
    expect(await owner.outcome).toBe("open");
    for (const r of readers) expect(await r.closed).toBe("amqp:link:stolen");
    expect(await attach({ address: address("1") }, { "com.microsoft:epoch": 4 }).outcome).toBe(
      "amqp:link:stolen",
    );
    expect(await attach({ address: address("1") }).outcome).toBe("amqp:link:stolen");
    const newer = attach({ address: address("1") }, { "com.microsoft:epoch": 6 });
    expect(await newer.outcome).toBe("open");
    expect(await owner.closed).toBe("amqp:link:stolen");
  });
});

describe("token expiry", () => {
  it("detaches a reader with amqp:unauthorized-access once its token expires without renewal", async () => {
    const c = await amqpConnect(hub, { username: "service" });
    try {
      const audience = `sb://localhost:${hub.amqpPort}/${hub.eventHubName}`;
      const answer = await request(c, "$cbs", {
        body: makeToken(service.primaryKey, audience, Math.floor(Date.now() / 1000) + 3, "service"),
        application_properties: {
          operation: "put-token",
          type: "servicebus.windows.net:sastoken",
          name: audience,
        },
      });
      expect(answer.application_properties?.["status-code"]).toBe(202);
      let openedAt = Number.NaN;
      let closedAt = Number.NaN;
      const condition = await new Promise<string>((resolve) => {
        const r = c.open_receiver({ source: { address: address("3") } });
        r.on("receiver_open", () => {
          openedAt = Date.now();
        });
        r.on("receiver_error", (ctx) => {
          closedAt = Date.now();
          resolve((ctx.receiver.error as { condition: string }).condition);
        });
      });
      expect(condition).toBe("amqp:unauthorized-access");
      // It was reading until the expiry (a refusal at attach comes within milliseconds).
      expect(closedAt - openedAt).toBeGreaterThan(300);
    } finally {
      c.close();
    }
  }, 15_000);
});
