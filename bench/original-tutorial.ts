/**
 * The original Python tutorial's back-end strategy (AddTagsAndQuery.py with iothub_service_client), ported
 * faithfully to TypeScript with the same SDK the product uses:
 *
 *   stats = registry_manager.get_statistics()
 *   dev_list = registry_manager.get_device_list(stats.totalDeviceCount)
 *   for device in dev_list: if device.deviceId == DEVICE_ID: twin_method.update_twin(DEVICE_ID, UPDATE_JSON)
 *   for device in dev_list: twin = get_twin(device); if twin.find(PLANT_SEARCH) > -1: print(device)
 *   for device in dev_list: twin = get_twin(device); if twin.find(PLANT_SEARCH) > -1 and
 *                                                       twin.find(CLIENT_SEARCH) > -1: print(device)
 *
 * The search strings are adapted to today's tutorial (tags.location.plant and reported connectivity, in both
 * the Node/.NET { type } shape and the Python sample's flat shape) so both strategies answer the same question.
 *
 * One unavoidable deviation: IoT Hub lists at most 1,000 identities per call (GET /devices?top= is capped at
 * 1,000 and has no paging; the full list needs an export job to blob storage), so with more devices the
 * original code would see only the first 1,000 (and index past the end of its list). Here the list is then
 * taken from `SELECT deviceId FROM devices`, 100 ids per page, and those requests are counted too.
 */
import type { Registry } from "azure-iothub";
import { nextPage } from "./clients.js";

export interface TutorialAnswer {
  total: number;
  inPlant: string[];
  inPlantCellular: string[];
}

export interface TutorialInput {
  deviceId: string;
  plant: string;
  region: string;
  connectivity: string;
}

const LIST_LIMIT = 1000;

async function listDeviceIds(registry: Registry, total: number): Promise<string[]> {
  if (total <= LIST_LIMIT) {
    const { responseBody } = await registry.list();
    return responseBody.map((d) => d.deviceId);
  }
  const ids: string[] = [];
  const query = registry.createQuery("SELECT deviceId FROM devices", 100);
  do {
    // The promise form of next() forgets the continuation token (azure-iothub 1.16): pass it.
    const page = await nextPage(query);
    for (const row of page.result as Array<{ deviceId: string }>) ids.push(row.deviceId);
  } while (query.hasMoreResults);
  return ids;
}

export async function originalTutorial(registry: Registry, input: TutorialInput): Promise<TutorialAnswer> {
  const { responseBody: stats } = await registry.getRegistryStatistics();
  const numberOfDevices = stats.totalDeviceCount;
  const devList = await listDeviceIds(registry, numberOfDevices);

  const update = {
    tags: { location: { region: input.region, plant: input.plant } },
    properties: { desired: { location: input.plant } },
  };
  for (const id of devList) {
    if (id === input.deviceId) await registry.updateTwin(id, update, "*");
  }

  const plantSearch = `"plant":"${input.plant}"`;
  const clientSearches = [
    `"connectivity":{"type":"${input.connectivity}"`,
    `"connectivity":"${input.connectivity}"`,
  ];

  const inPlant: string[] = [];
  for (const id of devList) {
    const { responseBody: twin } = await registry.getTwin(id);
    const twinInfo = JSON.stringify(twin);
    if (twinInfo.includes(plantSearch)) inPlant.push(id);
  }

  const inPlantCellular: string[] = [];
  for (const id of devList) {
    const { responseBody: twin } = await registry.getTwin(id);
    const twinInfo = JSON.stringify(twin);
    if (twinInfo.includes(plantSearch) && clientSearches.some((s) => twinInfo.includes(s))) {
      inPlantCellular.push(id);
    }
  }
  return { total: numberOfDevices, inPlant, inPlantCellular };
}
