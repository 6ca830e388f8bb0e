// Bundles the test page (page/app.jsx and page/index.html) into the folder given as argument.
// Usage: node build.mjs <out-dir>
import { copyFile, mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = process.argv[2];
if (!outdir) {
  console.error("usage: node build.mjs <out-dir>");
  process.exit(2);
}
await mkdir(outdir, { recursive: true });
await esbuild.build({
  entryPoints: { app: path.join(here, "page", "app.jsx") },
  bundle: true,
  format: "esm",
  jsx: "automatic",
  define: { "process.env.NODE_ENV": '"production"' },
  minify: true,
  logLevel: "warning",
  outdir,
});
await copyFile(path.join(here, "page", "index.html"), path.join(outdir, "index.html"));
console.log(`built the widget page into ${outdir}`);
