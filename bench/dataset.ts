/**
 * Deterministic, varied device data shared by the scenarios: tags.location {region, plant} (missing on some
 * devices), deviceType, firmware, floor; reported connectivity in the Node/.NET shape ({ type }) on most
 * devices, in the original Python sample's flat shape ("cellular") on a few, absent on the rest.
 */

export const PLANT = "Redmond43";
export const CONNECTIVITY = "cellular";

const PLANTS = [
  PLANT,
  "Redmond44",
  "Seattle1",
  "Seattle2",
  "Bellevue7",
  "Dublin3",
  "Dublin4",
  "Amsterdam2",
  "Singapore9",
  "Tokyo5",
  "Osaka1",
  "Sydney3",
  "Austin8",
  "Chicago2",
  "Toronto6",
  "Paris4",
  "Berlin1",
  "Madrid2",
  "Mumbai7",
  "Seoul3",
];
const REGIONS = ["US", "EU", "APAC"];
const TYPES = ["thermostat", "camera", "sensor", "gateway", "meter"];
const NETWORKS = ["cellular", "wifi", "wired", "lora"];

/** A small deterministic hash so that every run sees the same data. */
function h(i: number, salt: number): number {
  let x = (i + 1) * 2654435761 + salt * 40503;
  x ^= x >>> 16;
  x = Math.imul(x, 0x45d9f3b);
  x ^= x >>> 16;
  return x >>> 0;
}

export function deviceId(prefix: string, i: number): string {
  return `${prefix}-${String(i).padStart(6, "0")}`;
}

export function tagsFor(i: number): Record<string, unknown> {
  const tags: Record<string, unknown> = {
    deviceType: TYPES[h(i, 2) % TYPES.length],
    firmware: `1.${h(i, 3) % 6}.${h(i, 4) % 20}`,
    floor: h(i, 5) % 12,
  };
  // One device in ten has no location yet.
  if (h(i, 1) % 10 !== 0) {
    tags.location = { region: REGIONS[h(i, 6) % REGIONS.length], plant: PLANTS[h(i, 7) % PLANTS.length] };
  }
  return tags;
}

/** The device's reported properties, or undefined when it has never reported anything. */
export function reportedFor(i: number): Record<string, unknown> | undefined {
  const r = h(i, 8) % 20;
  const type = NETWORKS[h(i, 9) % NETWORKS.length];
  if (r < 14) return { connectivity: { type }, battery: h(i, 10) % 100 };
  // The original Python device sample reports the flat form.
  if (r < 16) return { connectivity: type };
  return undefined;
}
