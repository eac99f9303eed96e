import { describe, expect, it } from "vitest";
import { routeUpgrade } from "../../../src/hub/websocket/routes.js";

describe("the WebSocket upgrade routing table", () => {
  it("routes $iothub/websocket by subprotocol, $servicebus/websocket to AMQP only", () => {
    expect(routeUpgrade("/$iothub/websocket", ["mqtt"])).toEqual({
      ok: true,
      target: "mqtt",
      subprotocol: "mqtt",
    });
    expect(routeUpgrade("/$iothub/websocket", ["AMQPWSB10"])).toMatchObject({ ok: true, target: "amqp" });
    expect(routeUpgrade("/$servicebus/websocket", ["AMQPWSB10"])).toMatchObject({ ok: true, target: "amqp" });
    expect(routeUpgrade("/$servicebus/websocket", ["mqtt"])).toMatchObject({ ok: false });
  });

  it("takes the first offered subprotocol it serves, ignores the query string", () => {
    expect(routeUpgrade("/$iothub/websocket?iothub-no-client-cert=true", ["x", "mqtt", "AMQPWSB10"])).toEqual(
      {
        ok: true,
        target: "mqtt",
        subprotocol: "mqtt",
      },
    );
  });

  it("refuses other paths, case variants, MQTT 3.1, no subprotocol, and names why", () => {
    expect(routeUpgrade("/", ["mqtt"])).toEqual({ ok: false, reason: 'no WebSocket endpoint at "/"' });
    expect(routeUpgrade("/$IotHub/websocket", ["mqtt"]).ok).toBe(false);
    expect(routeUpgrade("/$iothub/websocket/", ["mqtt"]).ok).toBe(false);
    expect(routeUpgrade(undefined, ["mqtt"]).ok).toBe(false);
    expect(routeUpgrade("/$iothub/websocket", ["mqttv3.1"])).toEqual({
      ok: false,
      reason: '/$iothub/websocket needs the subprotocol mqtt or AMQPWSB10, not "mqttv3.1"',
    });
    expect(routeUpgrade("/$iothub/websocket", [])).toMatchObject({ ok: false, reason: /none was offered/ });
    // Inherited names are not subprotocols.
    expect(routeUpgrade("/$iothub/websocket", ["constructor", "__proto__"]).ok).toBe(false);
  });

  it("accepts the path MqttWs builds from a HostName with a port only on that port", () => {
    expect(routeUpgrade("/:18883/$iothub/websocket", ["mqtt"], 18883)).toMatchObject({ ok: true });
    expect(routeUpgrade("/:18883/$iothub/websocket", ["mqtt"], 443)).toMatchObject({ ok: false });
    expect(routeUpgrade("/:18883/$iothub/websocket", ["mqtt"])).toMatchObject({ ok: false });
    expect(routeUpgrade("/:18883/$servicebus/websocket", ["AMQPWSB10"], 18883)).toMatchObject({ ok: false });
  });
});
