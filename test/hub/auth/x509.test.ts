import { X509Certificate } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import {
  authenticateCaSigned,
  authenticateThumbprint,
  commonNameOf,
  MAX_CHAIN_DEPTH,
  parseCaCertificates,
} from "../../../src/hub/auth/x509.js";
import {
  caSignedDeviceCertificate,
  certificateAuthority,
  type KeyPair,
  selfSignedDeviceCertificate,
} from "../../../src/hub/tls/device-certs.js";

const x509 = (pem: string) => new X509Certificate(pem);
const DAY = 86_400_000;

describe("X.509 authenticators (thumbprint and CA chain)", () => {
  let root: KeyPair;
  beforeAll(async () => {
    root = await certificateAuthority("unit root");
  });

  it("reads the subject CN, special characters of device IDs included", async () => {
    for (const id of ["plain", "dev,1+x=y", "a'b(c)!$*#", "#lead", "CN=inner", "x\\41"]) {
      const made = await selfSignedDeviceCertificate(id);
      expect(commonNameOf(x509(made.cert))).toBe(id);
    }
  });

  it("thumbprints: either digest, either slot, any case; validity dates are enforced at the edges", async () => {
    const made = await selfSignedDeviceCertificate("t", {
      notBefore: new Date(Date.UTC(2030, 0, 1)),
      notAfter: new Date(Date.UTC(2030, 0, 2)),
    });
    const chain = [x509(made.cert)];
    const inside = Date.UTC(2030, 0, 1, 12);
    expect(authenticateThumbprint(chain, { primaryThumbprint: made.sha1.toLowerCase() }, inside)).toEqual({
      ok: true,
      method: "selfSigned",
      expiresAt: Date.UTC(2030, 0, 2),
    });
    expect(authenticateThumbprint(chain, { secondaryThumbprint: made.sha256 }, inside).ok).toBe(true);
    expect(authenticateThumbprint(chain, { primaryThumbprint: "0".repeat(40) }, inside)).toMatchObject({
      ok: false,
      refusal: "notAuthorized",
    });
    expect(
      authenticateThumbprint(chain, { primaryThumbprint: made.sha1 }, Date.UTC(2029, 11, 31)),
    ).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/not valid yet/),
    });
    expect(
      authenticateThumbprint(chain, { primaryThumbprint: made.sha1 }, Date.UTC(2030, 0, 2) + 1),
    ).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/expired/),
    });
    expect(authenticateThumbprint(undefined, { primaryThumbprint: made.sha1 }, inside)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/no client certificate/),
    });
  });

  it("CA chains: the session ends with the earliest notAfter; a registered CA never vouches for itself", async () => {
    const now = Date.now();
    const intermediate = await certificateAuthority("mid", {
      issuer: root,
      notAfter: new Date(now + 5 * DAY),
    });
    const leaf = await caSignedDeviceCertificate("d", intermediate, { notAfter: new Date(now + 30 * DAY) });
    const verdict = authenticateCaSigned(
      "d",
      [x509(leaf.cert), x509(intermediate.cert)],
      [x509(root.cert)],
      now,
    );
    expect(verdict).toMatchObject({ ok: true, method: "certificateAuthority" });
    if (verdict.ok) expect(verdict.expiresAt).toBe(Date.parse(x509(intermediate.cert).validTo));
    // The registered root presented as the device's own certificate (with CN = device ID) is refused.
    const selfCa = await certificateAuthority("d");
    expect(authenticateCaSigned("d", [x509(selfCa.cert)], [x509(selfCa.cert)], now).ok).toBe(false);
    // No CA registered at all: the reason says how to register one.
    expect(authenticateCaSigned("d", [x509(leaf.cert)], [], now)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/--ca-cert/),
    });
  });

  it(`CA chains longer than ${MAX_CHAIN_DEPTH} certificates are refused; a non-CA intermediate breaks the chain`, async () => {
    const now = Date.now();
    let issuer = root;
    const links: KeyPair[] = [];
    for (let i = 0; i < MAX_CHAIN_DEPTH; i++) {
      issuer = await certificateAuthority(`link ${i}`, { issuer });
      links.unshift(issuer);
    }
    const leaf = await caSignedDeviceCertificate("deep", issuer);
    const chain = [leaf, ...links].map((p) => x509(p.cert));
    expect(authenticateCaSigned("deep", chain, [x509(root.cert)], now).ok).toBe(false);
    // the same chain is fine when the CA registered is one of its upper links
    expect(authenticateCaSigned("deep", chain, [x509(links[2]!.cert)], now).ok).toBe(true);

    const notCa = await caSignedDeviceCertificate("middle", root);
    const underNotCa = await caSignedDeviceCertificate("x", notCa);
    expect(
      authenticateCaSigned("x", [x509(underNotCa.cert), x509(notCa.cert)], [x509(root.cert)], now).ok,
    ).toBe(false);
  });

  it("registering CAs: PEM with one or more CA certificates; device certificates and junk are refused", async () => {
    const other = await certificateAuthority("other");
    expect(parseCaCertificates([`${root.cert.trim()}\n${other.cert}`])).toHaveLength(2);
    expect(() => parseCaCertificates(["hello"], "--ca-cert x.pem")).toThrow(
      /--ca-cert x\.pem holds no PEM certificate/,
    );
    const device = await selfSignedDeviceCertificate("dev");
    expect(() => parseCaCertificates([device.cert])).toThrow(/is not a CA certificate/);
    expect(() =>
      parseCaCertificates(["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"]),
    ).toThrow(/not a readable certificate/);
  });
});
