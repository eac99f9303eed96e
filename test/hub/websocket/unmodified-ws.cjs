// Code as a user would write it for Azure, over WebSockets only: the device SDK with MqttWs and azure-iothub's
// service Client with AmqpWs, no adapter and no CA option (trust comes from NODE_EXTRA_CA_CERTS). Run against a
// hub on IoT Hub's standard ports (HostName=localhost).
const { Client: DeviceClient } = require("azure-iot-device");
const { MqttWs } = require("azure-iot-device-mqtt");
const { Client: ServiceClient, AmqpWs, Registry } = require("azure-iothub");

(async () => {
  const device = DeviceClient.fromConnectionString(process.env.IOTHUB_DEVICE_CONNECTION_STRING, MqttWs);
  await device.open();
  const twin = await device.getTwin();
  await new Promise((resolve, reject) =>
    twin.properties.reported.update({ via: "MqttWs" }, (e) => (e ? reject(e) : resolve())),
  );
  await device.close();
  const registry = Registry.fromConnectionString(process.env.IOTHUB_CONNECTION_STRING);
  const { responseBody } = await registry.getTwin(process.env.IOTHUB_DEVICE_ID);
  const reported = responseBody.properties.reported;
  const service = ServiceClient.fromConnectionString(process.env.IOTHUB_CONNECTION_STRING, AmqpWs);
  await service.open();
  await service.close();
  console.log(JSON.stringify({ via: reported.via, reportedVersion: reported.$version, serviceOpened: true }));
})().catch((e) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
