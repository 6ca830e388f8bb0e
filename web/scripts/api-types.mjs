// Generates src/api/schema.d.ts from tactful's own /openapi.json, so that the app's types are
// the server's. The spec is dumped by `python -m tactful.api.openapi` with a Python that has
// tactful's dependencies installed: $TACTFUL_PYTHON, else the clone's .venv (made by ./dev), else
// python3; always on this clone's src/, so that the spec is that of these sources.
// Both files are build output (gitignored).
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";

const web = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const venvPython = path.join(web, "..", ".venv", "bin", "python");
const python =
  process.env.TACTFUL_PYTHON || (existsSync(venvPython) ? venvPython : "python3");
const specPath = path.join(web, "openapi.json");

const src = path.join(web, "..", "src");
const pythonPath = [src, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter);
const dumped = spawnSync(python, ["-m", "tactful.api.openapi", specPath], {
  stdio: ["ignore", "inherit", "inherit"],
  env: { ...process.env, PYTHONPATH: pythonPath },
});
if (dumped.status !== 0) {
  console.error(
    `web: could not dump tactful's OpenAPI spec with ${python} ` +
      `(${dumped.error?.message ?? `exit status ${dumped.status}`}). ` +
      "It needs a Python with tactful's dependencies: run ./dev serve once (it creates .venv), " +
      "or set TACTFUL_PYTHON.",
  );
  process.exit(1);
}
const ast = await openapiTS(new URL(`file://${specPath}`));
const header = "// Generated from tactful's /openapi.json by scripts/api-types.mjs: do not edit.\n";
writeFileSync(path.join(web, "src", "api", "schema.d.ts"), header + astToString(ast));
console.log("web: API types generated from /openapi.json");
