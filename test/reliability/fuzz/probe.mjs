/**
 * Loaded into the fuzzed hub with `node --expose-gc --import <this file> dist/cli/local-hub.js ...`. It
 * changes nothing in the hub; it only watches, and reports on stderr with the prefix "[fuzz-probe]":
 * - prototype pollution: any property that appears on Object.prototype, Array.prototype or
 *   Function.prototype after start (checked every 100 ms and on SIGUSR2);
 * - memory on demand: on SIGUSR2 it runs a full GC and prints process.memoryUsage() as JSON.
 */
const watched = { Object: Object.prototype, Array: Array.prototype, Function: Function.prototype };
const baseline = Object.fromEntries(
  Object.entries(watched).map(([name, proto]) => [name, new Set(Reflect.ownKeys(proto))]),
);
const reported = new Set();
function checkPrototypes() {
  for (const [name, proto] of Object.entries(watched)) {
    for (const key of Reflect.ownKeys(proto)) {
      if (baseline[name].has(key) || reported.has(`${name}.${String(key)}`)) continue;
      reported.add(`${name}.${String(key)}`);
      let value;
      try {
        value = JSON.stringify(proto[key])?.slice(0, 200);
      } catch {
        value = "?";
      }
      process.stderr.write(
        `[fuzz-probe] polluted ${name}.prototype.${String(key)} = ${value} (seen at ${Date.now()})\n`,
      );
    }
  }
}
setInterval(checkPrototypes, 100).unref();
process.on("SIGUSR2", () => {
  checkPrototypes();
  globalThis.gc?.();
  globalThis.gc?.();
  process.stderr.write(`[fuzz-probe] memory ${JSON.stringify(process.memoryUsage())}\n`);
});
