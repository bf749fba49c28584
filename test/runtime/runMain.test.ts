import { describe, expect, test } from "bun:test"
import { join } from "node:path"

const fixture = join(import.meta.dir, "..", "fixtures", "shutdown-order.ts")

const start = (env: Record<string, string> = {}) => {
  const proc = Bun.spawn([process.execPath, "run", fixture], { env: { ...process.env, LOG_LEVEL: "warn", ...env }, stdout: "pipe", stderr: "pipe" })
  let out = ""
  const waiters: Array<{ line: string; seen: ReturnType<typeof Promise.withResolvers<void>> }> = []
  const stdout = (async () => {
    const decoder = new TextDecoder()
    for await (const chunk of proc.stdout) {
      out += decoder.decode(chunk, { stream: true })
      for (const w of waiters) if (out.includes(`${w.line}\n`)) w.seen.resolve()
    }
    for (const w of waiters) w.seen.reject(new Error(`the fixture ended without printing "${w.line}":\n${out}`))
    return out
  })()
  const printed = (line: string) => {
    const seen = Promise.withResolvers<void>()
    waiters.push({ line, seen })
    if (out.includes(`${line}\n`)) seen.resolve()
    return seen.promise
  }
  const stderr = new Response(proc.stderr).text()
  return { proc, ready: printed("ready"), printed, output: () => stdout, errors: () => stderr }
}

describe("runMain", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    test(`${signal} interrupts the program, releases resources in reverse order and exits 0`, async () => {
      const run = start()
      await run.ready
      run.proc.kill(signal)
      expect(await run.proc.exited).toBe(0)
      const lines = (await run.output()).trim().split("\n")
      expect(lines).toEqual(["acquired a", "acquired b", "acquired c", "ready", "worker interrupted", "released c", "released b", "released a"])
    })
  }

  test("past SHUTDOWN_TIMEOUT it stops waiting for a release and exits 1, saying why", async () => {
    const run = start({ HANG_ON_RELEASE: "1", SHUTDOWN_TIMEOUT: "500ms" })
    await run.ready
    run.proc.kill("SIGTERM")
    expect(await run.proc.exited).toBe(1)
    expect(await run.output()).toContain("releasing a (never ends)")
    expect(await run.errors()).toContain("shutdown did not finish within 500ms")
  })

  test("a second signal exits at once", async () => {
    const run = start({ HANG_ON_RELEASE: "1", SHUTDOWN_TIMEOUT: "60s" })
    await run.ready
    run.proc.kill("SIGTERM")
    await run.printed("releasing a (never ends)")
    run.proc.kill("SIGTERM")
    expect(await run.proc.exited).toBe(130)
    expect(await run.errors()).toContain("second SIGTERM")
  })
})
