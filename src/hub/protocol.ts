/**
 * IoT Hub's wire vocabulary, in one place: REST header names, MQTT topics, error codes.
 * See ../../../shared/iothub-protocol-notes.md and the IoT Hub MQTT/REST docs.
 */

export const HEADERS = {
  authorization: "authorization",
  ifMatch: "if-match",
  etag: "etag",
  continuation: "x-ms-continuation",
  maxItemCount: "x-ms-max-item-count",
  itemType: "x-ms-item-type",
  /** "each operation returns an x-ms-request-id header" (IoT Hub REST reference, overview). */
  requestId: "x-ms-request-id",
  /** IoT Hub repeats the error code of a failed request in this response header. */
  errorCode: "iothub-errorcode",
} as const;

/** The api-version the hub implements (IoT Hub REST reference, service APIs). */
export const API_VERSION = "2021-04-12";

/**
 * api-version values accepted on REST requests: the GA versions of the IoT Hub service REST API that the service
 * SDKs have sent over the years (azure-iothub 1.16 sends 2021-04-12), all answered with 2021-04-12 behaviour.
 * Anything else (or none) is refused as IoT Hub refuses it: 400, ErrorCode InvalidProtocolVersion.
 */
export const API_VERSIONS: ReadonlySet<string> = new Set([
  "2016-02-03",
  "2016-11-14",
  "2017-06-30",
  "2018-01-22",
  "2018-04-01",
  "2018-06-30",
  "2019-03-30",
  "2019-10-01",
  "2020-03-13",
  "2020-09-30",
  API_VERSION,
]);

/**
 * `x-ms-item-type` of query answers, as the service SDKs parse it (C# `QueryResultType`, Java `QueryType`):
 * `twin` for whole twins (SELECT *), `raw` for projections and aggregates; `deviceJob` and `jobResponse` are
 * job queries (devices.jobs, not implemented here).
 */
export const QUERY_ITEM_TYPES = {
  twin: "twin",
  raw: "raw",
  deviceJob: "deviceJob",
  jobResponse: "jobResponse",
} as const;

/** Error codes IoT Hub puts in `Message: "ErrorCode:<code>;<text>"`; the SDK maps some of them to typed errors. */
export const ERROR_CODES = {
  argumentInvalid: "ArgumentInvalid",
  iotHubUnauthorizedAccess: "IotHubUnauthorizedAccess",
  deviceNotFound: "DeviceNotFound",
  /** Direct methods ("IoT Hub error codes": 404103, 504101, 503102, 403800, 502000, 400027, 503001). */
  deviceNotOnline: "DeviceNotOnline",
  gatewayTimeout: "GatewayTimeout",
  deviceUnavailable: "DeviceUnavailable",
  deviceMaximumInflightMethodExceeded: "DeviceMaximumInflightMethodExceeded",
  genericBadGateway: "GenericBadGateway",
  connectionForcefullyClosedOnNewConnection: "ConnectionForcefullyClosedOnNewConnection",
  serviceUnavailable: "ServiceUnavailable",
  deviceAlreadyExists: "DeviceAlreadyExists",
  preconditionFailed: "PreconditionFailed",
  requestEntityTooLarge: "RequestEntityTooLarge",
  sqlQueryInvalid: "SqlQueryInvalid",
  invalidContinuationToken: "InvalidContinuationToken",
  notFound: "NotFound",
  invalidProtocolVersion: "InvalidProtocolVersion",
  throttlingException: "ThrottlingException",
  serverError: "ServerError",
} as const;

/**
 * Numeric IoT Hub error codes ("IoT Hub API common error codes": 400004 ArgumentInvalid, 404001 DeviceNotFound,
 * 429001 ThrottlingException, ...), as twin responses over MQTT carry them in `errorCode`.
 */
export const NUMERIC_ERROR_CODES: Record<number, number> = {
  400: 400004,
  401: 401002,
  404: 404001,
  412: 412001,
  413: 413002,
  429: 429001,
  500: 500001,
};

/** MQTT topics of a device, as "Communicate with an IoT hub using the MQTT protocol" names them. */
export const TOPICS = {
  twinResponsePrefix: "$iothub/twin/res/",
  twinGetPrefix: "$iothub/twin/GET/",
  twinReportedPrefix: "$iothub/twin/PATCH/properties/reported/",
  twinDesiredPrefix: "$iothub/twin/PATCH/properties/desired/",
  twinResponseFilter: "$iothub/twin/res/#",
  twinDesiredFilter: "$iothub/twin/PATCH/properties/desired/#",
  methodsFilter: "$iothub/methods/POST/#",
  methodsResponsePrefix: "$iothub/methods/res/",
  methodsRequestPrefix: "$iothub/methods/POST/",
  /** A direct method request: "`$iothub/methods/POST/{method name}/?$rid={request id}`" (direct methods doc). */
  methodRequest: (methodName: string, rid: string) => `$iothub/methods/POST/${methodName}/?$rid=${rid}`,
  telemetryPrefix: (deviceId: string) => `devices/${deviceId}/messages/events/`,
  cloudToDeviceFilter: (deviceId: string) => `devices/${deviceId}/messages/devicebound/#`,
  cloudToDevicePrefix: (deviceId: string) => `devices/${deviceId}/messages/devicebound/`,
  twinResponse: (status: number, rid: string, version?: number) =>
    `$iothub/twin/res/${status}/?$rid=${rid}${version === undefined ? "" : `&$version=${version}`}`,
  desiredUpdate: (version: number) => `$iothub/twin/PATCH/properties/desired/?$version=${version}`,
} as const;

/** MQTT 3.1.1 CONNACK return codes (spec 3.2.2.3). */
export const CONNACK = {
  /** "Connection Refused, Server unavailable": what a client is told when its connection is over quota. */
  serverUnavailable: 3,
  badUsernameOrPassword: 4,
  notAuthorized: 5,
} as const;

/**
 * AMQP 1.0 vocabulary of IoT Hub and its Event Hubs-compatible endpoint ("Communicate with your IoT hub using
 * the AMQP protocol"; Event Hubs "AMQP 1.0 in Azure Service Bus and Event Hubs protocol guide").
 */
export const AMQP = {
  /** IoT Hub's AMQP over TLS port. */
  standardPort: 5671,
  /** Claims-based security node: put-token requests ("AMQP claims-based security", protocol guide). */
  cbsNode: "$cbs",
  managementNode: "$management",
  putToken: "put-token",
  tokenTypes: ["servicebus.windows.net:sastoken", "azure-devices.net:sastoken"],
  /** Management READ types of the Event Hubs protocol guide ("Event Hubs management operations"). */
  readOperation: "READ",
  eventHubType: "com.microsoft:eventhub",
  partitionType: "com.microsoft:partition",
  /** The one filter the Event Hubs receiver sends: a SQL-like selector over the message annotations. */
  selectorFilter: "apache.org:selector-filter:string",
  selectorFilterCode: 0x468c00000004,
  epochProperty: "com.microsoft:epoch",
  receiverRuntimeMetric: "com.microsoft:enable-receiver-runtime-metric-name",
  annotations: {
    sequenceNumber: "x-opt-sequence-number",
    offset: "x-opt-offset",
    enqueuedTime: "x-opt-enqueued-time",
  },
  /** Error conditions (AMQP 1.0 section 2.8.15 and the Event Hubs/IoT Hub extensions the SDKs map). */
  errors: {
    unauthorized: "amqp:unauthorized-access",
    notFound: "amqp:not-found",
    notImplemented: "amqp:not-implemented",
    invalidField: "amqp:invalid-field",
    internal: "amqp:internal-error",
    resourceLimit: "amqp:resource-limit-exceeded",
    stolen: "amqp:link:stolen",
    argument: "com.microsoft:argument-error",
    argumentOutOfRange: "com.microsoft:argument-out-of-range",
    /** azure-iothub maps it to MessageTooLargeError. */
    messageSizeExceeded: "amqp:link:message-size-exceeded",
  },
  /**
   * Cloud-to-device endpoints ("IoT Hub endpoints", service endpoints): the service sends on
   * `/messages/devicebound` (each message's `to` naming the device) and reads feedback from
   * `/messages/serviceBound/feedback` (azure-iothub's spelling; IoT Hub compares it case-insensitively).
   */
  deviceboundNode: "/messages/devicebound",
  feedbackNode: "/messages/servicebound/feedback",
  /** The feedback message's content type ("Send cloud-to-device messages from an IoT hub", message feedback). */
  feedbackContentType: "application/vnd.microsoft.iothub.feedback.json",
  ackProperty: "iothub-ack",
} as const;

/**
 * WebSocket paths and subprotocols ("Communicate with an IoT hub using the MQTT protocol": "MQTT v3.1.1 over
 * WebSocket on TCP port 443"; "Communicate with your IoT hub by using the AMQP Protocol": AMQP over WebSockets on
 * port 443). The docs do not spell out the handshake; the SDKs send: azure-iot-device-mqtt's MqttWs
 * `wss://<host>:443/$iothub/websocket` with subprotocol `mqtt` (MQTT 3.1.1 section 6.0: "mqtt" is the
 * subprotocol of MQTT 3.1.1), azure-iothub's AmqpWs `wss://<host>:443/$iothub/websocket` with `AMQPWSB10`
 * (the AMQP WebSocket Binding), @azure/event-hubs `wss://<host>:<port>/$servicebus/websocket` with `AMQPWSB10`.
 */
export const WEBSOCKET = {
  iothubPath: "/$iothub/websocket",
  servicebusPath: "/$servicebus/websocket",
  mqttSubprotocol: "mqtt",
  amqpSubprotocol: "AMQPWSB10",
} as const;
