/**
 * CPU time the servers a benchmark talks to spend on it, when they run on this machine: the
 * PostgreSQL server's processes (postmaster, backends, WAL writer, autovacuum…) and the Kafka
 * broker's JVM, read from Linux's `/proc`. A run's figures then add up what the whole machine
 * spent per event, which is what bounds its rate when the cores are shared. Also how busy the
 * machine's cores were meanwhile, whoever used them (`/proc/stat`).
 *
 * Read where the server is local (a loopback address) and `/proc` exists; otherwise no figure.
 * A process that both starts and ends inside the measured span is missed (seldom: an autovacuum
 * worker), so the figures are a lower bound.
 */
import { readdirSync, readFileSync } from "node:fs"

/** Linux reports process times in clock ticks of 1/100 s (USER_HZ) on every architecture it ships. */
const ticksPerSecond = 100

export type Server = "postgres" | "kafka"

const isServer: Record<Server, (name: string, commandLine: () => string) => boolean> = {
  postgres: (name) => name === "postgres" || name.startsWith("postgres:"),
  kafka: (_name, commandLine) => commandLine().includes("kafka.Kafka")
}

/** CPU ticks per process id of one server, now. */
type Reading = ReadonlyMap<number, number>

const read = (server: Server): Reading => {
  const ticks = new Map<number, number>()
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry)
    if (!Number.isInteger(pid)) continue
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
      // The name is in parentheses and may itself hold spaces or parentheses.
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
      if (!isServer[server](name, () => readFileSync(`/proc/${pid}/cmdline`, "utf8"))) continue
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      // utime and stime, fields 14 and 15 of stat(5), counted from the state field (3).
      ticks.set(pid, Number(fields[11]) + Number(fields[12]))
    } catch {
      // Gone between the listing and the read.
    }
  }
  return ticks
}

/** All cores' busy and total ticks so far, and those the hypervisor gave to others (steal). */
const readMachine = () => {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
  // user nice system idle iowait irq softirq steal (guest time is already in user).
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields
  return { busy: user + nice + system + irq + softirq, total: user + nice + system + idle + iowait + irq + softirq + steal, steal }
}

const isLoopback = (host: string) => host === "localhost" || host.startsWith("127.") || host === "[::1]" || host === "::1"

export interface Used extends Partial<Record<Server, number>> {
  /** The share of all cores' time that was busy, and that was stolen by the hypervisor (0–1). */
  readonly machine?: { readonly busy: number; readonly steal: number }
}

export interface ServerCpu {
  /** Starts a measurement; `stop` answers the CPU µs each server used since, or undefined where it cannot be read. */
  readonly start: () => { readonly stop: () => Used }
}

/** A meter for the servers among `hosts` that run here. */
export const serverCpu = (hosts: Readonly<Record<Server, ReadonlyArray<string>>>): ServerCpu => {
  let procfs = true
  try {
    readdirSync("/proc/self")
  } catch {
    procfs = false
  }
  const servers = (Object.keys(hosts) as Array<Server>).filter((s) => procfs && hosts[s].length > 0 && hosts[s].every(isLoopback))
  return {
    start: () => {
      const before = new Map(servers.map((s) => [s, read(s)] as const))
      const machineBefore = procfs ? readMachine() : undefined
      return {
        stop: () => {
          const used: { -readonly [K in keyof Used]: Used[K] } = {}
          if (machineBefore !== undefined) {
            const now = readMachine()
            const total = now.total - machineBefore.total
            if (total > 0) used.machine = { busy: (now.busy - machineBefore.busy) / total, steal: (now.steal - machineBefore.steal) / total }
          }
          for (const server of servers) {
            const earlier = before.get(server)!
            let ticks = 0
            // A process started since counts from zero (also one that took an ended one's id);
            // one that ended since is not counted.
            for (const [pid, now] of read(server)) {
              const base = earlier.get(pid) ?? 0
              ticks += now >= base ? now - base : now
            }
            used[server] = ticks * (1_000_000 / ticksPerSecond)
          }
          return used
        }
      }
    }
  }
}
