import { X509Certificate } from "node:crypto";
import type { Duplex } from "node:stream";
import { TLSSocket } from "node:tls";
import { MAX_CHAIN_DEPTH } from "../auth/x509.js";

/**
 * The certificate chain a client presented in its TLS handshake, leaf first (the device certificate, then the
 * intermediates it sent), or undefined when it presented none or `stream` is not a TLS connection. The listener
 * asks every client for a certificate without requiring one (see listener.ts); whether it authenticates a device is
 * decided per device at login (auth/x509.ts). Read only when a login needs it, so SAS clients pay nothing.
 */
export function presentedChain(stream: Duplex | undefined): X509Certificate[] | undefined {
  if (!(stream instanceof TLSSocket)) return undefined;
  const first = stream.getPeerCertificate(true);
  if (!first?.raw) return undefined;
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  // Node links each certificate to its issuer (the last one to itself, when self-signed).
  let node: (typeof first & { issuerCertificate?: typeof first }) | undefined = first;
  while (node?.raw && chain.length < MAX_CHAIN_DEPTH) {
    const key = node.raw.toString("base64");
    if (seen.has(key)) break;
    seen.add(key);
    try {
      chain.push(new X509Certificate(node.raw));
    } catch {
      break;
    }
    node = node.issuerCertificate;
  }
  return chain.length > 0 ? chain : undefined;
}
