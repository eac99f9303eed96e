// Code as a user would write it for Azure: azure-iothub's service Client over AMQP over WebSockets, no adapter,
// no CA option (trust comes from NODE_EXTRA_CA_CERTS). Opens the client (connection and $cbs put-token) and
// closes it.
const { Client } = require("azure-iothub");
const { AmqpWs } = require("azure-iothub");

(async () => {
  const client = Client.fromConnectionString(process.env.IOTHUB_CONNECTION_STRING, AmqpWs);
  await client.open();
  console.log("opened");
  await client.close();
})().catch((e) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
