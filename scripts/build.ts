/**
 * Bundles every program into one self-contained file each, as the container image runs them:
 *
 *   bun run scripts/build.ts [--outdir dist]
 *
 * A bundle holds only the code a program reaches (tree-shaken) with whitespace and syntax
 * minified; names stay, so stack traces still read. It needs no node_modules at run time, and it
 * starts and runs in less memory than the sources: an idle event counter holds about 45 MB
 * resident instead of 61, and its heap is sized from what stays live (see bench/RESULTS.md).
 * No source map: Bun loads one at start-up, which costs 3-4 MB per process.
 *
 * PGlite (the embedded database of the demo and of any program run without a database server)
 * reads its WebAssembly and data files from beside the module that loads it, at run time; the
 * bundler cannot see those reads, so the files are copied next to the bundles.
 */
import { copyFileSync, readdirSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join, relative } from "node:path"

const root = join(import.meta.dir, "..")
const at = process.argv.indexOf("--outdir")
const outdir = at >= 0 ? process.argv[at + 1]! : join(root, "dist")
const entrypoints = readdirSync(join(root, "programs"))
  .filter((name) => name.endsWith(".ts"))
  .sort()
  .map((name) => join(root, "programs", name))

const started = performance.now()
const result = await Bun.build({
  entrypoints,
  outdir,
  // Named, so the bundles land flat in outdir: left to itself Bun may take a directory above
  // programs/ as the root and write them to outdir/programs/.
  root: join(root, "programs"),
  target: "bun",
  minify: { whitespace: true, syntax: true, identifiers: false }
})
if (!result.success) {
  for (const log of result.logs) console.error(log)
  process.exit(1)
}
for (const output of result.outputs) {
  console.log(`built ${relative(process.cwd(), output.path)} (${(output.size / 1024).toFixed(0)} KB)`)
}
/** The files PGlite loads by name at run time (its extensions are not used). */
const pgliteFiles = ["pglite.wasm", "pglite.data", "initdb.wasm"]
const pglite = dirname(createRequire(import.meta.url).resolve("@electric-sql/pglite"))
for (const file of pgliteFiles) copyFileSync(join(pglite, file), join(outdir, file))
console.log(`copied ${pgliteFiles.join(", ")} (PGlite's run-time files)`)
console.log(`${result.outputs.length} programs bundled in ${Math.round(performance.now() - started)} ms`)
