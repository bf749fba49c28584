/**
 * Rules of the layout that nothing else would catch until production: `src/` stays free of
 * drivers, runtime modules and runtime globals (it runs anywhere, on Effect's Clock, and is
 * tested on the memory backends), and no code imports the `effect` index, which loads the whole
 * library into every process.
 *
 * The rules read code, not comments: a comment may well say "the process" or "Date.now is not
 * used here". The globals rule skips string contents too, so a log message may name them.
 */
import { describe, expect, test } from "bun:test"
import { readdirSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"

const root = join(import.meta.dir, "..")

const sources = (dir: string): Array<string> =>
  readdirSync(join(root, dir), { recursive: true, encoding: "utf8" })
    .filter((file) => file.endsWith(".ts"))
    .map((file) => join(root, dir, file))

/** A regex literal may start after these (or at the start); after a name or `)` a slash divides. */
const beforeRegex = "(,=:[!&|?{};+-*%<>~^"

/**
 * `text` with comments blanked out, and with `strings` the insides of string, template and regex
 * literals too (not the code in `${}`). Same length and line breaks, so positions still match.
 */
const blank = (text: string, strings: boolean): string => {
  const out = text.split("")
  const wipe = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (out[k] !== "\n") out[k] = " "
  }
  // For each `${` still open, the brace depth of code at which its `}` closes it.
  const templates: Array<number> = []
  let depth = 0
  let previous = ""
  let i = 0
  /** Reads template text from `i` to its closing backtick or the next `${`. */
  const templateText = () => {
    const start = i
    while (i < text.length && text[i] !== "`" && !(text[i] === "$" && text[i + 1] === "{")) i += text[i] === "\\" ? 2 : 1
    if (strings) wipe(start, i)
    if (text[i] === "`") {
      i++
      previous = "`"
    } else if (i < text.length) {
      templates.push(depth)
      depth++
      i += 2
      previous = "{"
    }
  }
  while (i < text.length) {
    const c = text[i]!
    const next = text[i + 1]
    if (c === "/" && next === "/") {
      const end = text.indexOf("\n", i)
      wipe(i, end === -1 ? text.length : end)
      i = end === -1 ? text.length : end
    } else if (c === "/" && next === "*") {
      const end = text.indexOf("*/", i + 2)
      wipe(i, end === -1 ? text.length : end + 2)
      i = end === -1 ? text.length : end + 2
    } else if (c === `"` || c === "'") {
      const start = ++i
      while (i < text.length && text[i] !== c && text[i] !== "\n") i += text[i] === "\\" ? 2 : 1
      if (strings) wipe(start, i)
      i++
      previous = c
    } else if (c === "`") {
      i++
      templateText()
    } else if (c === "}" && templates.length > 0 && templates[templates.length - 1] === depth - 1) {
      templates.pop()
      depth--
      i++
      templateText()
    } else if (c === "/" && (previous === "" || beforeRegex.includes(previous))) {
      const start = ++i
      let inClass = false
      while (i < text.length && text[i] !== "\n" && (inClass || text[i] !== "/")) {
        if (text[i] === "[") inClass = true
        else if (text[i] === "]") inClass = false
        i += text[i] === "\\" ? 2 : 1
      }
      if (strings) wipe(start, i)
      i++
      previous = "/"
    } else {
      if (c === "{") depth++
      else if (c === "}") depth--
      if (!/\s/.test(c)) previous = c
      i++
    }
  }
  return out.join("")
}

const lineOf = (text: string, index: number) => text.slice(0, index).split("\n").length

/** Every module specifier the code imports or re-exports, statically, bare or dynamically. */
const importsIn = (text: string): Array<string> =>
  [...blank(text, false).matchAll(
    /(?:^|[\n;])\s*(?:import|export)\b[^"'`;]*?\bfrom\s*["']([^"']+)["']|(?:^|[\n;])\s*import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)|\brequire\(\s*["']([^"']+)["']\s*\)/g
  )].map((m) => m[1] ?? m[2] ?? m[3] ?? m[4]!)

/** `import "x"`: runs a module for its side effects (a driver, a global patch) with no name to show for it. */
const sideEffectImportsIn = (text: string): Array<string> =>
  [...blank(text, false).matchAll(/(?:^|[\n;])\s*import\s*["']([^"']+)["']/g)].map((m) => m[1]!)

/**
 * Uses of a runtime's globals or of wall-clock timers, each as `line: name`. A property of our
 * own that happens to be called `process` (`options.process(...)`) is not one.
 */
const runtimeGlobalsIn = (text: string): Array<string> => {
  const code = blank(text, true)
  return [...code.matchAll(
    /(?<![.\w$])(?:globalThis\s*\.\s*)?(Bun|Deno|process)\s*(?:\.|\[)|(?<![.\w$])(?:globalThis\s*\.\s*)?(setTimeout|setInterval)\b|(?<![.\w$])(?:globalThis\s*\.\s*)?(Date\s*\.\s*now)\b/g
  )].map((m) => `${lineOf(code, m.index)}: ${(m[1] ?? m[2] ?? m[3]!).replace(/\s/g, "")}`)
}

const allowedInSrc = (spec: string) => spec.startsWith(".") || spec.startsWith("effect/") || spec === "hono"

describe("layout", () => {
  test("src/ imports only effect modules, hono (web-standard) and itself", () => {
    const offending = sources("src").flatMap((file) =>
      importsIn(readFileSync(file, "utf8"))
        .filter((spec) => !allowedInSrc(spec))
        .map((spec) => `${relative(root, file)}: ${spec}`)
    )
    expect(offending).toEqual([])
  })

  test("src/ has no side-effect imports", () => {
    const offending = sources("src").flatMap((file) =>
      sideEffectImportsIn(readFileSync(file, "utf8")).map((spec) => `${relative(root, file)}: import "${spec}"`)
    )
    expect(offending).toEqual([])
  })

  test("src/ uses no runtime globals (Bun, Deno, process) and no wall-clock timers (setTimeout, setInterval, Date.now)", () => {
    const offending = sources("src").flatMap((file) =>
      runtimeGlobalsIn(readFileSync(file, "utf8")).map((use) => `${relative(root, file)}:${use}`)
    )
    expect(offending).toEqual([])
  })

  test("no program, layer, source, bench or script imports the effect index", () => {
    const files = ["src", "layers", "programs", "bench", "scripts", "test"].flatMap(sources)
    expect(files.length).toBeGreaterThan(50)
    const offending = files.filter((file) => importsIn(readFileSync(file, "utf8")).includes("effect")).map((file) => relative(root, file))
    expect(offending).toEqual([])
  })
})

describe("layout rules catch what they are for", () => {
  const sample = [
    `import * as Effect from "effect/Effect"`,
    `import "amqplib"`,
    `import 'effect'`,
    `export { x } from "./x.ts"`,
    `import {`,
    `  a,`,
    `  b`,
    `} from "postgres"`,
    `const later = await import("kafkajs")`,
    `// import "commented-out"`,
    `/* import { y } from "in-a-block-comment"`,
    `   Bun.serve, process.exit(), Date.now() */`,
    `const url = "amqp://guest@host" // the "//" in the string is not a comment`,
    `const message = "setTimeout and process.env only named in a string"`,
    `const options = { process: (x: number) => x }`,
    `options.process(1)`,
    "const template = `${process.env.HOME}/out`",
    `const pattern = /["'\\/]/`,
    `const t = setTimeout(() => {}, 1)`,
    `Bun.serve({})`,
    `const now = Date . now()`,
    `globalThis.Deno.exit(1)`,
    `setInterval(tick, 5)`,
    `const env = process["env"]`
  ].join("\n")

  test("imports: every static, bare, re-exported and dynamic form; none from comments", () => {
    expect(importsIn(sample)).toEqual(["effect/Effect", "amqplib", "effect", "./x.ts", "postgres", "kafkajs"])
    expect(importsIn(sample).filter((spec) => !allowedInSrc(spec))).toEqual(["amqplib", "effect", "postgres", "kafkajs"])
  })

  test("side-effect imports: the bare forms only", () => {
    expect(sideEffectImportsIn(sample)).toEqual(["amqplib", "effect"])
  })

  test("runtime globals: in code, with their line; not in comments, strings or our own properties", () => {
    expect(runtimeGlobalsIn(sample)).toEqual([
      "17: process",
      "19: setTimeout",
      "20: Bun",
      "21: Date.now",
      "22: Deno",
      "23: setInterval",
      "24: process"
    ])
  })

  test("blanking keeps positions: same length, same line breaks", () => {
    expect(blank(sample, true).length).toBe(sample.length)
    expect(blank(sample, true).split("\n").length).toBe(sample.split("\n").length)
  })
})
