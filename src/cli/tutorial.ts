#!/usr/bin/env node
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type RunningHub, startHub } from "../hub/index.js";
import { TUTORIAL_DEVICE_ID } from "../shared/rules.js";

/**
 * `npm start`: the whole device twins tutorial on an embedded local hub, running the same command-line tools a
 * user runs (as child processes), so what is shown is exactly what they would see.
 */

const PLANT = "Redmond43";
const DEVICE_ID = TUTORIAL_DEVICE_ID;

const out = (line = "") => process.stdout.write(`${line}\n`);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runTool(script: string, args: string[], envFile: string, cwd: string): Promise<Run> {
  const env: NodeJS.ProcessEnv = {};
  // The tools prefer environment variables over the env file: drop any IOTHUB_* the user has exported (say,
  // for Azure) so the tutorial talks to its own hub.
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith("IOTHUB_")) env[key] = value;
  const path = fileURLToPath(new URL(`./${script}.js`, import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path, ...args, "--env-file", envFile], { cwd, env });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      process.stdout.write(indent(chunk));
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      process.stderr.write(indent(chunk));
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

function indent(text: string): string {
  return text.replace(/^(?=.)/gm, "    ");
}

/** Reads "Devices in <plant>...: a, b" lines back from add-tags-and-query's output. */
function membership(stdout: string): { inPlant: boolean; cellular: boolean } {
  const ids = (pattern: RegExp) =>
    (pattern.exec(stdout)?.[1] ?? "")
      .split(",")
      .map((id) => id.trim())
      .filter((id) => id !== "" && id !== "(none)");
  return {
    inPlant: ids(new RegExp(`^Devices in ${PLANT}: (.*)$`, "m")).includes(DEVICE_ID),
    cellular: ids(new RegExp(`^Devices in ${PLANT} using cellular network: (.*)$`, "m")).includes(DEVICE_ID),
  };
}

async function step(
  title: string,
  command: string,
  script: string,
  args: string[],
  envFile: string,
  cwd: string,
) {
  out();
  out(title);
  out(`  $ npx ${command}`);
  const run = await runTool(script, args, envFile, cwd);
  if (run.code !== 0) throw new Error(`${command} exited with code ${run.code}`);
  return run;
}

const yesNo = (value: boolean) => (value ? "yes" : "no");

async function main(): Promise<number> {
  const workDir = mkdtempSync(join(tmpdir(), "device-twins-tutorial-"));
  let hub: RunningHub | undefined;
  const cleanUp = async () => {
    await hub?.stop().catch(() => {});
    rmSync(workDir, { recursive: true, force: true });
  };
  const onSignal = () => {
    cleanUp().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  try {
    out("Device twins tutorial on a local IoT Hub");
    out("========================================");
    hub = await startHub({ port: 0, dataDir: join(workDir, "hub"), quiet: true });
    const envFile = join(workDir, ".env");
    writeFileSync(envFile, hub.envFile(DEVICE_ID), { mode: 0o600 });
    out(`Started a local IoT Hub on ${hub.hostName} (HTTPS and MQTT over TLS, its own CA).`);
    out(
      `The device ${DEVICE_ID} is registered in it; the tools read their settings from a temporary .env file.`,
    );

    const before = await step(
      "1. The back-end app tags the device with its plant, sets the desired property, and queries:",
      "add-tags-and-query",
      "add-tags-and-query",
      [],
      envFile,
      workDir,
    );
    await step(
      "2. The device app connects over MQTT, reads its twin and reports cellular connectivity:",
      "report-connectivity --once",
      "report-connectivity",
      ["--once"],
      envFile,
      workDir,
    );
    const after = await step(
      "3. The back-end app again: the device now shows up in the cellular query:",
      "add-tags-and-query",
      "add-tags-and-query",
      [],
      envFile,
      workDir,
    );

    const b = membership(before.stdout);
    const a = membership(after.stdout);
    out();
    out(`Before: ${DEVICE_ID} in ${PLANT}: ${yesNo(b.inPlant)}, using cellular: ${yesNo(b.cellular)}`);
    out(`After:  ${DEVICE_ID} in ${PLANT}: ${yesNo(a.inPlant)}, using cellular: ${yesNo(a.cellular)}`);
    if (!(b.inPlant && !b.cellular && a.inPlant && a.cellular)) {
      process.stderr.write(
        "error: the queries did not show the expected before/after; see the output above.\n",
      );
      return 1;
    }
    out();
    out("Done. To keep a hub running and use the tools yourself: `npx local-hub` in one terminal,");
    out("`cp .env.example .env`, then `npx add-tags-and-query` and `npx report-connectivity` in another.");
    out("To run them against Azure IoT Hub, see README.md.");
    return 0;
  } catch (error) {
    process.stderr.write(`error: ${(error as Error).message}\n`);
    return 1;
  } finally {
    await cleanUp();
  }
}

const code = await main();
process.exit(code);
