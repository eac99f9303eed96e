// After `tsc`: the files package.json names as bins become executable. tsc writes them 0644, and npm makes a
// bin executable only when it links it, which `npm ci` / `npm install` do before the `prepare` build has
// written dist/ in a fresh clone: `npx local-hub` then failed with "Permission denied".
import { chmodSync, readFileSync } from "node:fs";

const { bin } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
for (const file of Object.values(bin)) chmodSync(new URL(`../${file}`, import.meta.url), 0o755);
