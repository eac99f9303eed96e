import { describe, expect, it } from "vitest";
import { deviceboundTopic, deviceOfAddress, messageSize } from "../../../src/hub/c2d/message.js";

describe("cloud-to-device message properties", () => {
  it("writes the MQTT property bag as the MQTT doc's table says: null as the key alone, empty string as key=", () => {
    const topic = deviceboundTopic("dev 1", {
      to: "/devices/dev%201/messages/devicebound",
      messageId: "m/1",
      expiry: Date.UTC(2030, 0, 1),
      app: { prop1: null, prop2: "", prop3: "a string" },
    });
    expect(topic).toBe(
      "devices/dev 1/messages/devicebound/%24.mid=m%2F1&%24.to=%2Fdevices%2Fdev%25201%2Fmessages%2Fdevicebound&%24.exp=2030-01-01T00%3A00%3A00.000Z&prop1&prop2=&prop3=a%20string",
    );
    expect(deviceboundTopic("d", { to: "", app: {} })).toBe("devices/d/messages/devicebound/%24.to=");
  });

  it("counts the body, system property values and application property names and values", () => {
    const size = messageSize(
      { to: "/devices/d/messages/devicebound", messageId: "abc", app: { k: "vv", n: null } },
      Buffer.alloc(10),
    );
    expect(size).toBe(10 + "/devices/d/messages/devicebound".length + 3 + 1 + 2 + 1);
  });

  it("reads the device from the service's `to`, url-decoded, case-insensitively on the fixed parts", () => {
    expect(deviceOfAddress("/devices/a%2Bb/messages/devicebound")).toBe("a+b");
    expect(deviceOfAddress("/devices/Dev/Messages/DeviceBound")).toBe("Dev");
    expect(deviceOfAddress("/devices/a/messages/events")).toBeUndefined();
    expect(deviceOfAddress("/devices/%E0/messages/devicebound")).toBeUndefined();
  });
});
