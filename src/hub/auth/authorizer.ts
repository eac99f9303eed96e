import type { X509Certificate } from "node:crypto";
import { errors } from "../errors.js";
import type { Permission, SharedAccessPolicy } from "./credentials.js";
import { type ParsedToken, parseToken, signedByOneOf } from "./sas.js";
import { type DeviceCredentials, type DeviceVerdict, refused } from "./verdict.js";
import { authenticateCaSigned, authenticateThumbprint } from "./x509.js";

export interface DeviceKeys {
  primaryKey: string;
  secondaryKey: string;
  status: "enabled" | "disabled";
  /** How the device authenticates; absent means "sas". */
  authType?: "sas" | "selfSigned" | "certificateAuthority";
  primaryThumbprint?: string | null;
  secondaryThumbprint?: string | null;
}

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
    /** The CA certificates registered with the hub, for certificateAuthority devices. */
    private readonly authorities: readonly X509Certificate[] = [],
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

  /**
   * A device login (MQTT CONNECT), whatever the protocol: the device's registered authentication type picks the
   * authenticator ("Control access to IoT Hub": a device authenticates with a SAS token signed by its key or a
   * policy with DeviceConnect, or with an X.509 certificate, see x509.ts). A password means a SAS login (the
   * device SDKs send none with X.509); an X.509 device that sends one is refused, as it has no key to sign it.
   * A disabled device is refused whatever it presents: disabling is how IoT Hub revokes a device.
   */
  device(credentials: DeviceCredentials): DeviceVerdict {
    const { deviceId } = credentials;
    const password = credentials.password === "" ? undefined : credentials.password;
    if (password !== undefined) return this.sasDevice(deviceId, password);
    const device = this.deviceKeys(deviceId);
    const type = device?.authType ?? "sas";
    if (!device && credentials.peerCertificate?.length)
      return refused("device not registered", "notAuthorized");
    if (!device || type === "sas") {
      // No password and no X.509 identity: a SAS device (or an unknown one) without its token.
      return refused("password is not a SharedAccessSignature", "badCredentials");
    }
    const now = this.now();
    const verdict =
      type === "selfSigned"
        ? authenticateThumbprint(credentials.peerCertificate, device, now)
        : authenticateCaSigned(deviceId, credentials.peerCertificate, this.authorities, now);
    if (verdict.ok && device.status !== "enabled") return refused("device is disabled", "notAuthorized");
    return verdict;
  }

  /** A SAS login: the password is a token for `deviceId`. */
  private sasDevice(deviceId: string, password: string): DeviceVerdict {
    const token = parseToken(password);
    if (!token) return refused("password is not a SharedAccessSignature", "badCredentials");
    if (token.expiry * 1000 <= this.now()) return refused("token expired", "badCredentials");
    const device = this.deviceKeys(deviceId);
    if (!device) return refused("device not registered", "notAuthorized");
    // X.509 devices (selfSigned, certificateAuthority) have no symmetric keys and cannot log in with SAS.
    if ((device.authType ?? "sas") !== "sas" || (!device.primaryKey && !device.secondaryKey))
      return refused(
        "device authenticates with an X.509 certificate, not a SAS token: connect with its certificate and key",
        "notAuthorized",
      );
    const slash = token.resource.indexOf("/");
    const host = slash < 0 ? token.resource : token.resource.slice(0, slash);
    const path = slash < 0 ? "" : token.resource.slice(slash);
    if (!this.isOurHost(host)) return refused("token audience is another hub", "notAuthorized");
    let signed: boolean;
    if (token.keyName === undefined) {
      if (path !== `/devices/${deviceId.toLowerCase()}`) {
        return refused("token is for another device", "notAuthorized");
      }
      signed = signedByOneOf(token, [device.primaryKey, device.secondaryKey]);
    } else {
      const policy = this.policy(token.keyName);
      if (path !== "" && path !== `/devices/${deviceId.toLowerCase()}`) {
        return refused("token is for another device", "notAuthorized");
      }
      signed =
        !!policy &&
        policy.permissions.includes("DeviceConnect") &&
        signedByOneOf(token, [policy.primaryKey, policy.secondaryKey]);
    }
    if (!signed) return refused("signature does not match the device's keys", "badCredentials");
    if (device.status !== "enabled") return refused("device is disabled", "notAuthorized");
    return { ok: true, method: "sas", expiresAt: token.expiry * 1000 };
  }

  private checkLifetime(token: ParsedToken): void {
    if (token.expiry * 1000 <= this.now()) {
      throw errors.unauthorized(
        "The SharedAccessSignature has expired: create a new one (the SDK renews its own)",
      );
    }
  }
}
