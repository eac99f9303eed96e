/**
 * Fixed, public development credentials, like Azurite's well-known account key: a fresh clone works
 * without editing anything. They protect nothing; use your own keys (`--keys-file`) for anything shared.
 * Each key is the base64 of a readable ASCII string so it is obviously not a secret.
 */

import { TUTORIAL_DEVICE_ID } from "../../shared/rules.js";

export type Permission = "RegistryRead" | "RegistryWrite" | "ServiceConnect" | "DeviceConnect";

export interface SharedAccessPolicy {
  name: string;
  primaryKey: string;
  secondaryKey: string;
  permissions: readonly Permission[];
}

const devKey = (text: string) => Buffer.from(text, "ascii").toString("base64");

/** IoT Hub's four default policies with their default permissions ("Control access to IoT Hub"). */
export const DEV_POLICIES: readonly SharedAccessPolicy[] = [
  {
    name: "iothubowner",
    primaryKey: devKey("local-hub-dev-iothubowner-key-01"),
    secondaryKey: devKey("local-hub-dev-iothubowner-key-02"),
    permissions: ["RegistryRead", "RegistryWrite", "ServiceConnect", "DeviceConnect"],
  },
  {
    name: "service",
    primaryKey: devKey("local-hub-dev-service-key-00001"),
    secondaryKey: devKey("local-hub-dev-service-key-00002"),
    permissions: ["ServiceConnect"],
  },
  {
    name: "device",
    primaryKey: devKey("local-hub-dev-device-key-000001"),
    secondaryKey: devKey("local-hub-dev-device-key-000002"),
    permissions: ["DeviceConnect"],
  },
  {
    name: "registryRead",
    primaryKey: devKey("local-hub-dev-registryRead-key-1"),
    secondaryKey: devKey("local-hub-dev-registryRead-key-2"),
    permissions: ["RegistryRead"],
  },
  {
    name: "registryReadWrite",
    primaryKey: devKey("local-hub-dev-registryRW-key-001"),
    secondaryKey: devKey("local-hub-dev-registryRW-key-002"),
    permissions: ["RegistryRead", "RegistryWrite"],
  },
];

/** The tutorial's device, registered on first start with a well-known key. */
export const TUTORIAL_DEVICE = {
  deviceId: TUTORIAL_DEVICE_ID,
  primaryKey: devKey("local-hub-dev-myDeviceId-key-001"),
  secondaryKey: devKey("local-hub-dev-myDeviceId-key-002"),
} as const;

/** Checks that a policy set from a keys file is well formed; throws with a message naming the problem. */
export function validatePolicies(policies: unknown): SharedAccessPolicy[] {
  if (!Array.isArray(policies) || policies.length === 0) {
    throw new Error(
      'the keys file must hold {"policies": [{"name", "primaryKey", "secondaryKey", "permissions"}]}',
    );
  }
  const known: Permission[] = ["RegistryRead", "RegistryWrite", "ServiceConnect", "DeviceConnect"];
  return policies.map((p, i) => {
    const where = `policies[${i}]`;
    if (typeof p?.name !== "string" || !/^[A-Za-z0-9_.-]{1,64}$/.test(p.name))
      throw new Error(`${where}.name is missing or invalid`);
    for (const k of ["primaryKey", "secondaryKey"] as const) {
      if (typeof p[k] !== "string" || !isBase64Key(p[k]))
        throw new Error(`${where}.${k} must be a base64 key of 16 to 64 bytes`);
    }
    if (
      !Array.isArray(p.permissions) ||
      p.permissions.some((x: unknown) => !known.includes(x as Permission))
    ) {
      throw new Error(`${where}.permissions must be a list of ${known.join(", ")}`);
    }
    return {
      name: p.name,
      primaryKey: p.primaryKey,
      secondaryKey: p.secondaryKey,
      permissions: p.permissions,
    };
  });
}

/** IoT Hub accepts symmetric keys of 16 to 64 bytes, base64-encoded. */
export function isBase64Key(key: string): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(key) || key.length % 4 !== 0) return false;
  const bytes = Buffer.from(key, "base64").length;
  return bytes >= 16 && bytes <= 64;
}
