import { errors } from "../errors.js";

/**
 * An If-Match condition as the REST layer parsed it from the header: `"*"` matches any etag, anything else must be
 * the current etag (without quotes).
 */
export type EtagCondition = string;

/** If-Match: `*` matches anything; otherwise the etag must be current. */
export function checkEtag(ifMatch: EtagCondition, current: string, what: string): void {
  if (ifMatch !== "*" && ifMatch !== current) throw errors.staleEtag(what);
}

let etagCounter = 0;

/** A fresh identity etag (a device's etag changes whenever its identity does). Twin etags: see twinEtag. */
export function newEtag(): string {
  etagCounter = (etagCounter + 1) % 1e9;
  return Buffer.from(`${Date.now().toString(36)}${etagCounter}`).toString("base64");
}
