import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect } from "node:tls";
import { parse } from "dotenv";
import { afterAll, describe, expect, it } from "vitest";
import { TUTORIAL_DEVICE } from "../../src/hub/auth/credentials.js";
import { run } from "../cli/support.js";

/**
 * The built `local-hub` run as a user runs it (child processes, real data folders, real files): one hub per data
 * folder, exit codes through npx, the tutorial device with custom keys, a safe --write-env, --host-name.
 */

const ROOT = resolve(import.meta.dirname, "../..");
const BIN = join(ROOT, "dist/cli/local-hub.js");

interface Hub {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitFor(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>;
}

function startHub(args: string[], options: { cwd?: string; npx?: boolean } = {}): Hub {
  const child = options.npx
    ? spawn("npx", ["local-hub", ...args], { cwd: options.cwd ?? ROOT, detached: true })
    : spawn(process.execPath, [BIN, ...args], { cwd: options.cwd ?? ROOT });
  let out = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once("exit", (code, signal) => r({ code, signal })),
  );
  let done = false;
  exited.then(() => (done = true));
  return {
    child,
    output: () => out,
    exited,
    async waitFor(pattern, ms = 30_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const m = out.match(pattern);
        if (m) return m;
        if (done || Date.now() > deadline)
          throw new Error(`${pattern} did not appear${done ? " (exited)" : ""}; output:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

describe("local-hub guards its data and says what it does", () => {
  const dirs: string[] = [];
  const hubs: Hub[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), "hub-guards-"));
    dirs.push(d);
    return d;
  };
  const hub = (args: string[], options?: { cwd?: string; npx?: boolean }) => {
    const h = startHub(args, options);
    hubs.push(h);
    return h;
  };
  afterAll(() => {
    for (const h of hubs) {
      if (h.child.exitCode === null && h.child.signalCode === null) h.child.kill("SIGKILL");
    }
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("refuses a second hub on a data folder a running hub holds, naming its PID and port; kill -9 frees it", async () => {
    const dir = tmp();
    const data = join(dir, "data");
    const first = hub(["--port", "0", "-q", "--data-dir", data]);
    const port = Number((await first.waitFor(/listening on localhost:(\d+)/))[1]);
    await first.waitFor(/Press Ctrl-C to stop/);

    // `--port 0` used to start a second hub on the same folder.
    const second = hub(["--port", "0", "-q", "--data-dir", data]);
    expect((await second.exited).code).toBe(1);
    expect(second.output()).toBe(
      `local-hub: the data folder ${data} is in use by another local-hub (PID ${first.child.pid}, port ${port}): ` +
        "use that hub, or stop it first; to run a second hub at the same time, give it its own --data-dir " +
        "(or --in-memory)\n",
    );
    // Refused before touching the folder: the first hub's note still names it.
    expect(JSON.parse(readFileSync(join(data, "hub.pid"), "utf8"))).toEqual({ pid: first.child.pid, port });

    // The same port as the first hub: the folder is named first, not the port (which would lead to --port 0).
    const samePort = hub(["--port", String(port), "-q", "--data-dir", data]);
    expect((await samePort.exited).code).toBe(1);
    expect(samePort.output()).toMatch(/^local-hub: the data folder .* is in use by another local-hub \(PID /);

    // kill -9 leaves no lock behind: the operating system drops it with the process.
    first.child.kill("SIGKILL");
    await first.exited;
    const third = hub(["--port", "0", "-q", "--data-dir", data]);
    await third.waitFor(/Press Ctrl-C to stop/);
    third.child.kill("SIGTERM");
    expect((await third.exited).code).toBe(0);
    expect(existsSync(join(data, "hub.pid"))).toBe(false);
  });

  it("port in use by something else: the hint does not send a second hub to the same folder", async () => {
    const dir = tmp();
    const first = hub(["--port", "0", "-q", "--data-dir", join(dir, "a")]);
    const port = (await first.waitFor(/listening on localhost:(\d+)/))[1];
    await first.waitFor(/Press Ctrl-C to stop/);
    const second = hub(["--port", port!, "-q", "--data-dir", join(dir, "b")]);
    expect((await second.exited).code).toBe(1);
    expect(second.output()).toBe(
      `local-hub: port ${port} is already in use: if it is another local-hub, use it (its terminal shows its ` +
        "connection strings) or stop it; otherwise stop what uses the port, or pick another with --port (0 picks a " +
        "free one)\n",
    );
    first.child.kill("SIGTERM");
    await first.exited;
  });

  it("Ctrl-C: the hub exits 0; through npx the shell sees 130, as the README and --help say", async () => {
    const direct = hub(["--port", "0", "-q", "--in-memory"]);
    await direct.waitFor(/Press Ctrl-C to stop/);
    direct.child.kill("SIGINT");
    expect((await direct.exited).code).toBe(0);

    // As a terminal does it: SIGINT to the whole foreground process group (npm, its shell, the hub).
    const viaNpx = hub(["--port", "0", "-q", "--in-memory"], { npx: true });
    await viaNpx.waitFor(/Press Ctrl-C to stop/, 60_000);
    process.kill(-viaNpx.child.pid!, "SIGINT");
    const exit = await viaNpx.exited;
    expect(viaNpx.output()).toContain("SIGINT: stopping local-hub");
    expect(exit.code ?? 128 + (exit.signal === "SIGINT" ? 2 : 0)).toBe(130);
  }, 90_000);

  it("--keys-file: the tutorial device gets a generated key, also when it had the public one", async () => {
    const dir = tmp();
    const data = join(dir, "data");
    // A first run with the development keys registers myDeviceId with the public key.
    const dev = hub(["--port", "0", "-q", "--data-dir", data]);
    await dev.waitFor(/Press Ctrl-C to stop/);
    expect(dev.output()).toContain(TUTORIAL_DEVICE.primaryKey);
    dev.child.kill("SIGTERM");
    await dev.exited;

    const keys = join(dir, "keys.json");
    const ownerKey = Buffer.alloc(32, 7).toString("base64");
    writeFileSync(
      keys,
      JSON.stringify({
        policies: [
          {
            name: "iothubowner",
            primaryKey: ownerKey,
            secondaryKey: ownerKey,
            permissions: ["RegistryRead", "RegistryWrite", "ServiceConnect", "DeviceConnect"],
          },
        ],
      }),
    );
    for (const folder of [data, join(dir, "fresh")]) {
      const envFile = join(dir, `${folder === data ? "old" : "fresh"}.env`);
      const custom = hub(["--port", "0", "--data-dir", folder, "--keys-file", keys, "--write-env", envFile]);
      await custom.waitFor(/Press Ctrl-C to stop/);
      expect(custom.output()).toContain(
        folder === data
          ? "replaced the public development keys of myDeviceId with generated ones"
          : "registered the tutorial device myDeviceId with generated keys",
      );
      expect(custom.output()).not.toContain(TUTORIAL_DEVICE.primaryKey);
      const env = parse(readFileSync(envFile, "utf8"));
      const key = /SharedAccessKey=([^;]+)/.exec(env.IOTHUB_DEVICE_CONNECTION_STRING!)![1]!;
      expect(key).not.toBe(TUTORIAL_DEVICE.primaryKey);
      expect(Buffer.from(key, "base64")).toHaveLength(32);

      // The generated key works; the README's public key is refused.
      const ok = await run("report-connectivity", ["--once", "--env-file", envFile]);
      expect(ok.code, ok.stderr).toBe(0);
      const publicKeyEnv = join(dir, "public.env");
      writeFileSync(
        publicKeyEnv,
        [
          env.IOTHUB_DEVICE_CONNECTION_STRING!.replace(key, TUTORIAL_DEVICE.primaryKey),
          `IOTHUB_CA_FILE=${env.IOTHUB_CA_FILE}`,
        ]
          .map((line, i) => (i === 0 ? `IOTHUB_DEVICE_CONNECTION_STRING=${line}` : line))
          .join("\n"),
      );
      const refused = await run("report-connectivity", ["--once", "--env-file", publicKeyEnv]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^error: The hub localhost:\d+ refused the device 'myDeviceId'/m);
      custom.child.kill("SIGTERM");
      expect((await custom.exited).code).toBe(0);
    }
  }, 90_000);

  it("--write-env never writes through a symlink, and its temporary file is created exclusively", async () => {
    const dir = tmp();
    const victim = join(dir, "victim.txt");
    writeFileSync(victim, "untouched\n");
    const target = join(dir, ".env");
    symlinkSync(victim, target);
    // Symlinks at the names the old code used (<file>.<pid>.tmp) for the next PIDs: none may be written through.
    const planted: string[] = [];
    const h = hub(["--port", "0", "-q", "--in-memory", "--write-env", target]);
    for (let pid = h.child.pid! - 2; pid < h.child.pid! + 50; pid++) {
      const name = `${target}.${pid}.tmp`;
      try {
        symlinkSync(victim, name);
        planted.push(name);
      } catch {
        // taken
      }
    }
    await h.waitFor(/Press Ctrl-C to stop/);
    expect(readFileSync(victim, "utf8")).toBe("untouched\n");
    expect(lstatSync(target).isSymbolicLink()).toBe(false);
    expect(statSync(target).mode & 0o777).toBe(0o600);
    expect(readFileSync(target, "utf8")).toMatch(/^IOTHUB_CONNECTION_STRING=HostName=localhost:\d+;/);
    // Nothing left behind but the file itself, the victim and the planted links.
    expect(readdirSync(dir).sort()).toEqual(
      [".env", "victim.txt", ...planted.map((p) => p.slice(dir.length + 1))].sort(),
    );
    h.child.kill("SIGTERM");
    expect((await h.exited).code).toBe(0);
  });

  it("--host-name: the connection strings and the certificate use that name", async () => {
    const dir = tmp();
    const h = hub(["--port", "0", "-q", "--data-dir", join(dir, "data"), "--host-name", "hub.example.test"]);
    const port = Number((await h.waitFor(/listening on hub\.example\.test:(\d+)/))[1]);
    await h.waitFor(/Press Ctrl-C to stop/);
    expect(h.output()).toContain(`HostName=hub.example.test:${port};SharedAccessKeyName=iothubowner;`);
    // The name need not resolve here: connect to loopback and ask for it by name, trusting only the hub's CA.
    const ca = readFileSync(join(dir, "data", "ca.pem"), "utf8");
    const socket = connect({ host: "127.0.0.1", port, servername: "hub.example.test", ca });
    await once(socket, "secureConnect");
    expect(socket.authorized).toBe(true);
    socket.destroy();
    h.child.kill("SIGTERM");
    expect((await h.exited).code).toBe(0);
  });
});
