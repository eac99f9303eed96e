import { X509Certificate } from "node:crypto";
import { Client as DeviceClient } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import type { Registry } from "azure-iothub";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeToken } from "../../../src/hub/auth/sas.js";
import {
  caSignedDeviceCertificate,
  certificateAuthority,
  type KeyPair,
  selfSignedDeviceCertificate,
} from "../../../src/hub/tls/device-certs.js";
import { inAnHour, type MqttOutcome, mqttLogin } from "../../reliability/support.js";
import {
  connectDevice,
  eventually,
  getDeviceTwin,
  registryFor,
  reportProperties,
  startTestHub,
} from "../support.js";

type Hub = Awaited<ReturnType<typeof startTestHub>>;
// biome-ignore lint/suspicious/noExplicitAny: identities carry fields the SDK's Device type does not declare
type AnyDevice = any;

const DAY = 86_400_000;

describe("X.509 device authentication over MQTT/TLS (azure-iot-device with x509=true)", () => {
  let hub: Hub;
  let registry: Registry;
  let root: KeyPair;
  const open: DeviceClient[] = [];
  const lines: string[] = [];

  beforeAll(async () => {
    root = await certificateAuthority("test device CA");
    hub = await startTestHub({
      inMemory: true,
      caCertificates: [root.cert],
      quiet: false,
      log: (line) => lines.push(line),
    });
    registry = registryFor(hub.serviceConnectionString, hub.caPem);
  });
  afterAll(async () => {
    await Promise.all(open.map((c) => c.close().catch(() => {})));
    await hub.cleanup();
    // Keys never reach the log.
    expect(lines.join("\n")).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
  });

  /** The device SDK as an X.509 device uses it: `x509=true` in the connection string, cert and key as options. */
  async function openX509(deviceId: string, pair: KeyPair): Promise<DeviceClient> {
    const client = DeviceClient.fromConnectionString(
      `HostName=${hub.hostName};DeviceId=${deviceId};x509=true`,
      Mqtt,
    );
    await client.setOptions({ cert: pair.cert, key: pair.key, ca: hub.caPem });
    try {
      await client.open();
    } catch (error) {
      await client.close().catch(() => {});
      throw error;
    }
    open.push(client);
    return client;
  }

  /** A raw MQTT login as the SDK makes it for X.509 (no password), to read the CONNACK code. */
  async function rawX509(deviceId: string, pair: KeyPair): Promise<MqttOutcome> {
    const outcome = await mqttLogin(hub, deviceId, "", {
      password: undefined,
      cert: pair.cert,
      key: pair.key,
    });
    if (outcome.ok) outcome.client.end(true);
    return outcome;
  }

  const selfSigned = (
    deviceId: string,
    prints: { primaryThumbprint?: string; secondaryThumbprint?: string },
  ) =>
    registry.create({
      deviceId,
      authentication: { type: "selfSigned", x509Thumbprint: prints },
    } as AnyDevice);
  const connectionState = async (deviceId: string): Promise<string> =>
    ((await registry.get(deviceId)).responseBody as AnyDevice).connectionState;
  const caDevice = (deviceId: string) =>
    registry.create({ deviceId, authentication: { type: "certificateAuthority" } } as AnyDevice);

  it("thumbprints: SHA-1 primary, SHA-256 secondary in lower case; the device then uses its twin", async () => {
    const one = await selfSignedDeviceCertificate("thumb-1");
    await selfSigned("thumb-1", { primaryThumbprint: one.sha1 });
    const client = await openX509("thumb-1", one);
    const twin = await getDeviceTwin(client);
    await reportProperties(twin, { via: "x509" });
    const got = await registry.getTwin("thumb-1");
    expect(got.responseBody.properties.reported.via).toBe("x509");

    const primary = await selfSignedDeviceCertificate("thumb-2");
    const secondary = await selfSignedDeviceCertificate("thumb-2");
    await selfSigned("thumb-2", {
      primaryThumbprint: primary.sha256,
      secondaryThumbprint: secondary.sha256.toLowerCase(),
    });
    await (await openX509("thumb-2", secondary)).close();
    await (await openX509("thumb-2", primary)).close();
    // SHA-1 secondary too
    const sha1Secondary = await selfSignedDeviceCertificate("thumb-3");
    await selfSigned("thumb-3", { primaryThumbprint: one.sha1, secondaryThumbprint: sha1Secondary.sha1 });
    await (await openX509("thumb-3", sha1Secondary)).close();
    expect(hub.connectedDevices).toBe(1);
    expect(lines).toContain("MQTT thumb-1 connected (X.509 thumbprint)");
    // TLS 1.2 clients (older device stacks) present their certificate the same way.
    const tls12 = await mqttLogin(hub, "thumb-1", "", {
      password: undefined,
      cert: one.cert,
      key: one.key,
      maxVersion: "TLSv1.2",
    } as Parameters<typeof mqttLogin>[3]);
    expect(tls12.ok).toBe(true);
    if (tls12.ok) {
      expect((tls12.client as unknown as { stream: { getProtocol(): string } }).stream.getProtocol()).toBe(
        "TLSv1.2",
      );
      tls12.client.end(true);
    }
  });

  it("a certificate whose thumbprint is not registered is refused with CONNACK 5 (SDK: not authorized)", async () => {
    const registered = await selfSignedDeviceCertificate("thumb-wrong");
    const other = await selfSignedDeviceCertificate("thumb-wrong");
    await selfSigned("thumb-wrong", { primaryThumbprint: registered.sha256 });
    await expect(openX509("thumb-wrong", other)).rejects.toThrow(/not authorized/i);
    expect(await rawX509("thumb-wrong", other)).toMatchObject({ ok: false, returnCode: 5 });
    // no certificate at all, no password
    expect(await mqttLogin(hub, "thumb-wrong", "", { password: undefined })).toMatchObject({
      ok: false,
      returnCode: 5,
    });
    expect((await rawX509("thumb-wrong", registered)).ok).toBe(true);
    expect(lines).toContain(
      "MQTT thumb-wrong connect refused: the certificate's thumbprint matches neither the primary nor the secondary thumbprint registered for the device",
    );
  });

  it("CA-signed: a chain to a registered CA with CN = device ID logs in, also through an intermediate", async () => {
    await caDevice("ca-1");
    const leaf = await caSignedDeviceCertificate("ca-1", root);
    const client = await openX509("ca-1", leaf);
    await reportProperties(await getDeviceTwin(client), { signedBy: "root" });
    await client.close();

    const intermediate = await certificateAuthority("test intermediate CA", { issuer: root });
    const viaIntermediate = await caSignedDeviceCertificate("ca-1", intermediate);
    // The device sends its certificate followed by the intermediate.
    await (
      await openX509("ca-1", {
        cert: `${viaIntermediate.cert.trim()}\n${intermediate.cert}`,
        key: viaIntermediate.key,
      })
    ).close();
    // without the intermediate the chain does not reach the registered CA
    expect(await rawX509("ca-1", viaIntermediate)).toMatchObject({ ok: false, returnCode: 5 });
  });

  it("CA-signed: CN mismatch, an unregistered CA and a thumbprint device's CA certificate are refused", async () => {
    await caDevice("ca-2");
    const forOther = await caSignedDeviceCertificate("ca-2-other", root);
    await expect(openX509("ca-2", forOther)).rejects.toThrow(/not authorized/i);
    expect(await rawX509("ca-2", forOther)).toMatchObject({ ok: false, returnCode: 5 });
    expect(
      lines.some((l) =>
        l.includes(
          'ca-2 connect refused: the device certificate\'s subject common name (CN="ca-2-other") is not the device ID',
        ),
      ),
    ).toBe(true);
    const stranger = await certificateAuthority("someone else's CA");
    expect(await rawX509("ca-2", await caSignedDeviceCertificate("ca-2", stranger))).toMatchObject({
      ok: false,
      returnCode: 5,
    });
    // a self-signed certificate with the right CN is no CA-signed certificate
    expect(await rawX509("ca-2", await selfSignedDeviceCertificate("ca-2"))).toMatchObject({
      ok: false,
      returnCode: 5,
    });
    // a CA-signed certificate is not accepted for a thumbprint device whose thumbprint it does not have
    const own = await selfSignedDeviceCertificate("thumb-ca");
    await selfSigned("thumb-ca", { primaryThumbprint: own.sha1 });
    expect(await rawX509("thumb-ca", await caSignedDeviceCertificate("thumb-ca", root))).toMatchObject({
      ok: false,
      returnCode: 5,
    });
  });

  it("expired and not-yet-valid certificates are refused, for thumbprint and CA devices", async () => {
    const past = { notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) };
    const expired = await selfSignedDeviceCertificate("thumb-old", past);
    await selfSigned("thumb-old", { primaryThumbprint: expired.sha256 });
    await expect(openX509("thumb-old", expired)).rejects.toThrow(/not authorized/i);
    expect(await rawX509("thumb-old", expired)).toMatchObject({ ok: false, returnCode: 5 });

    await caDevice("ca-old");
    expect(await rawX509("ca-old", await caSignedDeviceCertificate("ca-old", root, past))).toMatchObject({
      ok: false,
      returnCode: 5,
    });
    const future = { notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 10 * DAY) };
    expect(await rawX509("ca-old", await caSignedDeviceCertificate("ca-old", root, future))).toMatchObject({
      ok: false,
      returnCode: 5,
    });
    // an expired intermediate breaks the chain
    const oldIntermediate = await certificateAuthority("expired intermediate", { issuer: root, ...past });
    const leaf = await caSignedDeviceCertificate("ca-old", oldIntermediate);
    expect(
      await rawX509("ca-old", { cert: `${leaf.cert.trim()}\n${oldIntermediate.cert}`, key: leaf.key }),
    ).toMatchObject({
      ok: false,
      returnCode: 5,
    });
  });

  it("disabling the device drops its connection and refuses the next login (revocation)", async () => {
    const pair = await caSignedDeviceCertificate("ca-revoked", root);
    await caDevice("ca-revoked");
    const client = await openX509("ca-revoked", pair);
    expect(client).toBeDefined();
    expect(await connectionState("ca-revoked")).toBe("Connected");
    const device: AnyDevice = (await registry.get("ca-revoked")).responseBody;
    await registry.update({ ...device, status: "disabled" });
    // The hub closes the connection; the SDK's reconnection attempts are refused (its retries continue quietly).
    await eventually(async () =>
      (await connectionState("ca-revoked")) === "Disconnected" ? true : undefined,
    );
    await expect(openX509("ca-revoked", pair)).rejects.toThrow(/not authorized/i);
    expect(await rawX509("ca-revoked", pair)).toMatchObject({ ok: false, returnCode: 5 });
    // enabled again, it logs in again
    const disabled: AnyDevice = (await registry.get("ca-revoked")).responseBody;
    await registry.update({ ...disabled, status: "enabled" });
    expect((await rawX509("ca-revoked", pair)).ok).toBe(true);
  });

  it("new thumbprints drop a device connected with the old certificate", async () => {
    const first = await selfSignedDeviceCertificate("thumb-roll");
    const next = await selfSignedDeviceCertificate("thumb-roll");
    await selfSigned("thumb-roll", { primaryThumbprint: first.sha1 });
    await openX509("thumb-roll", first);
    expect(await connectionState("thumb-roll")).toBe("Connected");
    const device: AnyDevice = (await registry.get("thumb-roll")).responseBody;
    device.authentication.x509Thumbprint = { primaryThumbprint: next.sha1, secondaryThumbprint: null };
    await registry.update(device);
    await eventually(async () =>
      (await connectionState("thumb-roll")) === "Disconnected" ? true : undefined,
    );
    expect(await rawX509("thumb-roll", first)).toMatchObject({ ok: false, returnCode: 5 });
    expect((await rawX509("thumb-roll", next)).ok).toBe(true);
  });

  it("an X.509 device's SAS login is refused; a SAS device is unaffected, with or without a client certificate", async () => {
    await caDevice("ca-sas");
    const owner = makeToken(
      Buffer.from("local-hub-dev-iothubowner-key-01").toString("base64"),
      `${hub.hostName}/devices/ca-sas`,
      inAnHour(),
      "iothubowner",
    );
    expect(await mqttLogin(hub, "ca-sas", owner)).toMatchObject({ ok: false, returnCode: 5 });
    // A password means a SAS login, even next to a good certificate: refused, the device has no key.
    const good = await caSignedDeviceCertificate("ca-sas", root);
    expect(
      await mqttLogin(hub, "ca-sas", makeToken("", `${hub.hostName}/devices/ca-sas`, inAnHour()), good),
    ).toMatchObject({ ok: false, returnCode: 5 });
    expect((await rawX509("ca-sas", good)).ok).toBe(true);

    // The tutorial device (SAS) through the SDK, and the service API over HTTPS, on the same TLS port.
    const sas = await connectDevice(hub.deviceConnectionString(), hub.caPem);
    await reportProperties(await getDeviceTwin(sas), { still: "sas" });
    await sas.close();
    expect((await registry.get("myDeviceId")).responseBody.deviceId).toBe("myDeviceId");
    // a SAS device presenting a certificate but no password is refused as a missing password (CONNACK 4)
    const pair = await caSignedDeviceCertificate("myDeviceId", root);
    expect(await rawX509("myDeviceId", pair)).toMatchObject({ ok: false, returnCode: 4 });
  });

  it("the session ends when the certificate's notAfter passes", async () => {
    const pair = await selfSignedDeviceCertificate("thumb-short", {
      notAfter: new Date(Date.now() + 8_000),
    });
    await selfSigned("thumb-short", { primaryThumbprint: pair.sha256 });
    const outcome = await mqttLogin(hub, "thumb-short", "", {
      password: undefined,
      cert: pair.cert,
      key: pair.key,
    });
    expect(outcome.ok).toBe(true);
    if (!outcome.ok) return;
    await new Promise<void>((resolve) => outcome.client.once("close", () => resolve()));
    outcome.client.end(true);
    // closed by the hub at notAfter (whole seconds in the certificate), not before
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(new X509Certificate(pair.cert).validTo));
    expect(await rawX509("thumb-short", pair)).toMatchObject({ ok: false, returnCode: 5 });
  }, 30_000);
});
