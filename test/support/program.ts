/**
 * Runs a program from `programs/` (or a built bundle, given by absolute path) as a real child
 * process, as a user would, and lets a test wait for what it logs, signal it and collect its exit.
 */
import { isAbsolute, join } from "node:path"

const root = join(import.meta.dir, "..", "..")

export interface RunningProgram {
  readonly pid: number
  /** Resolves with the first stderr/stdout line matching `pattern`; rejects if the process exits first. */
  readonly waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<string>
  readonly kill: (signal: NodeJS.Signals) => void
  readonly exited: Promise<number>
  /** Everything printed so far. */
  readonly stdout: () => string
  readonly stderr: () => string
}

export const startProgram = (
  program: string,
  env: Record<string, string>,
  args: ReadonlyArray<string> = [],
  options: { readonly cwd?: string } = {}
): RunningProgram => {
  const file = isAbsolute(program) ? program : join(root, "programs", program)
  const proc = Bun.spawn([process.execPath, "run", file, ...args], {
    cwd: options.cwd ?? root,
    env: { ...process.env, LOG_FORMAT: "json", LOG_LEVEL: "info", METRICS_PORT: "0", ...env },
    stdout: "pipe",
    stderr: "pipe"
  })
  let out = ""
  let err = ""
  const waiters = new Set<{ pattern: RegExp; resolve: (line: string) => void }>()
  const scan = (text: string) => {
    for (const line of text.split("\n")) {
      for (const waiter of waiters) {
        if (waiter.pattern.test(line)) {
          waiters.delete(waiter)
          waiter.resolve(line)
        }
      }
    }
  }
  const pump = async (stream: ReadableStream<Uint8Array>, append: (s: string) => void) => {
    const decoder = new TextDecoder()
    let pending = ""
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true })
      append(text)
      pending += text
      const cut = pending.lastIndexOf("\n")
      if (cut >= 0) {
        scan(pending.slice(0, cut))
        pending = pending.slice(cut + 1)
      }
    }
    if (pending) scan(pending)
  }
  const pumped = Promise.all([pump(proc.stdout, (s) => { out += s }), pump(proc.stderr, (s) => { err += s })])
  const exited = pumped.then(() => proc.exited)

  return {
    pid: proc.pid,
    waitFor: (pattern, timeoutMs = 30_000) => {
      const seen = (out + "\n" + err).split("\n").find((line) => pattern.test(line))
      if (seen !== undefined) return Promise.resolve(seen)
      return new Promise<string>((resolve, reject) => {
        const waiter = { pattern, resolve: (line: string) => { clearTimeout(timer); resolve(line) } }
        const timer = setTimeout(() => {
          waiters.delete(waiter)
          reject(new Error(`${program}: no line matching ${pattern} within ${timeoutMs} ms\n--- stderr ---\n${err.slice(-3000)}`))
        }, timeoutMs)
        waiters.add(waiter)
        void exited.then((code) => {
          if (!waiters.has(waiter)) return
          waiters.delete(waiter)
          clearTimeout(timer)
          reject(new Error(`${program} exited with ${code} before printing ${pattern}\n--- stderr ---\n${err.slice(-3000)}`))
        })
      })
    },
    kill: (signal) => proc.kill(signal),
    exited,
    stdout: () => out,
    stderr: () => err
  }
}

/** The URL the ops server logged it listens on. */
export const opsUrl = async (program: RunningProgram): Promise<string> => {
  const line = await program.waitFor(/ops server listening on/)
  const match = /listening on (http:\/\/[^\s"\\]+)/.exec(line)
  if (match === null) throw new Error(`cannot find the ops URL in: ${line}`)
  return match[1]!
}
