/**
 * Rules of the layout that nothing else would catch until production: `src/` stays free of
 * drivers and runtime modules (it runs anywhere and is tested on the memory backends), and no
 * code imports the `effect` index, which loads the whole library into every process.
 */
import { describe, expect, test } from "bun:test"
import { readdirSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"

const root = join(import.meta.dir, "..")

const sources = (dir: string): Array<string> =>
  readdirSync(join(root, dir), { recursive: true, encoding: "utf8" })
    .filter((file) => file.endsWith(".ts"))
    .map((file) => join(root, dir, file))

const imports = (file: string) =>
  [...readFileSync(file, "utf8").matchAll(/(?:^|\n)\s*(?:import|export)\b[^"']*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)]
    .map((m) => m[1] ?? m[2]!)

describe("layout", () => {
  test("src/ imports only effect modules, hono (web-standard) and itself", () => {
    const offending = sources("src").flatMap((file) =>
      imports(file)
        .filter((spec) => !spec.startsWith(".") && !spec.startsWith("effect/") && spec !== "hono")
        .map((spec) => `${relative(root, file)}: ${spec}`)
    )
    expect(offending).toEqual([])
  })

  test("no program, layer, source, bench or script imports the effect index", () => {
    const files = ["src", "layers", "programs", "bench", "scripts", "test"].flatMap(sources)
    expect(files.length).toBeGreaterThan(50)
    const offending = files.filter((file) => imports(file).includes("effect")).map((file) => relative(root, file))
    expect(offending).toEqual([])
  })
})
