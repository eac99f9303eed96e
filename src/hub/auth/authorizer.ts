import { errors } from "../errors.js";
import { CONNACK } from "../protocol.js";
import type { Permission, SharedAccessPolicy } from "./credentials.js";
import { type ParsedToken, parseToken, signedByOneOf } from "./sas.js";

export interface DeviceKeys {
  primaryKey: string;
  secondaryKey: string;
  status: "enabled" | "disabled";
}

type RefusalCode = (typeof CONNACK)[keyof typeof CONNACK];
export type DeviceAuthResult =
  /** `expiresAt`: when the token ends (ms since the epoch); the hub closes the connection then. */
  { ok: true; expiresAt: number } | { ok: false; reason: string; returnCode: RefusalCode };

/** A refused MQTT login: CONNACK 4 for credentials that do not hold, 5 for a login that is not allowed. */
export const loginRefused = (reason: string, returnCode: RefusalCode): DeviceAuthResult => ({
  ok: false,
  reason,
  returnCode,
});

/**
 * Decides who may do what, as IoT Hub does: service calls need a policy token with the operation's
 * permission; a device may connect with a token signed by its own key, or by a policy with DeviceConnect.
 */
export class Authorizer {
  constructor(
    private readonly policies: readonly SharedAccessPolicy[],
    /** Whether a host name (with or without port) names this hub. */
    private readonly isOurHost: (host: string) => boolean,
    private readonly deviceKeys: (deviceId: string) => DeviceKeys | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  policy(name: string): SharedAccessPolicy | undefined {
    return this.policies.find((p) => p.name === name);
  }

  /** Throws a 401 HubError unless the Authorization header grants `needed`. Never echoes the token. */
  service(header: string | undefined, needed: Permission): string {
    const token = parseToken(header);
    if (!token)
      throw errors.unauthorized("Missing or malformed SharedAccessSignature in the Authorization header");
    this.checkLifetime(token);
    // A device token (sr=<host>/devices/<id>, no skn) is refused for what it is, before its audience is judged.
    if (token.keyName === undefined) {
      throw errors.unauthorized(
        "This is a device token (sr=<host>/devices/<id>, no skn): service APIs need a shared access policy token, from a connection string with SharedAccessKeyName (for example iothubowner)",
      );
    }
    if (!this.isOurHost(token.resource)) {
      throw errors.unauthorized(
        "The token's audience (sr) is not this hub: use a connection string for this hub",
      );
    }
    const policy = this.policy(token.keyName);
    if (!policy || !signedByOneOf(token, [policy.primaryKey, policy.secondaryKey])) {
      throw errors.unauthorized("The token's signature does not match any key of the named policy");
    }
    if (!policy.permissions.includes(needed)) {
      throw errors.unauthorized(
        `Policy '${policy.name}' lacks the ${needed} permission needed here: use a policy that has it (for example iothubowner)`,
      );
    }
    return policy.name;
  }

  /** MQTT CONNECT: checks the device's password (a SAS token) for `deviceId`. */
  device(deviceId: string, password: string | undefined): DeviceAuthResult {
    const token = parseToken(password);
    if (!token) return loginRefused("password is not a SharedAccessSignature", CONNACK.badUsernameOrPassword);
    if (token.expiry * 1000 <= this.now())
      return loginRefused("token expired", CONNACK.badUsernameOrPassword);
    const device = this.deviceKeys(deviceId);
    if (!device) return loginRefused("device not registered", CONNACK.notAuthorized);
    // X.509 devices (selfSigned, certificateAuthority) have no symmetric keys and cannot log in with SAS.
    if (!device.primaryKey && !device.secondaryKey)
      return loginRefused(
        "device authenticates with X.509, which local-hub does not implement",
        CONNACK.notAuthorized,
      );
    const slash = token.resource.indexOf("/");
    const host = slash < 0 ? token.resource : token.resource.slice(0, slash);
    const path = slash < 0 ? "" : token.resource.slice(slash);
    if (!this.isOurHost(host)) return loginRefused("token audience is another hub", CONNACK.notAuthorized);
    let signed: boolean;
    if (token.keyName === undefined) {
      if (path !== `/devices/${deviceId.toLowerCase()}`) {
        return loginRefused("token is for another device", CONNACK.notAuthorized);
      }
      signed = signedByOneOf(token, [device.primaryKey, device.secondaryKey]);
    } else {
      const policy = this.policy(token.keyName);
      if (path !== "" && path !== `/devices/${deviceId.toLowerCase()}`) {
        return loginRefused("token is for another device", CONNACK.notAuthorized);
      }
      signed =
        !!policy &&
        policy.permissions.includes("DeviceConnect") &&
        signedByOneOf(token, [policy.primaryKey, policy.secondaryKey]);
    }
    if (!signed)
      return loginRefused("signature does not match the device's keys", CONNACK.badUsernameOrPassword);
    if (device.status !== "enabled") return loginRefused("device is disabled", CONNACK.notAuthorized);
    return { ok: true, expiresAt: token.expiry * 1000 };
  }

  private checkLifetime(token: ParsedToken): void {
    if (token.expiry * 1000 <= this.now()) {
      throw errors.unauthorized(
        "The SharedAccessSignature has expired: create a new one (the SDK renews its own)",
      );
    }
  }
}
