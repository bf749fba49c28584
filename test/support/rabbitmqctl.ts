/**
 * The broker-side fault injector: `rabbitmqctl` closes connections the way a broker shutting
 * down does (connection.close with CONNECTION_FORCED), unlike the TCP proxy's cut, which the
 * client sees as a dead socket. Connections are picked by their `connection_name` client
 * property, so tests running at the same time on the same broker are left alone.
 */
import { execFile } from "node:child_process"
import { promisify } from "node:util"

const run = promisify(execFile)
const rabbitmqctl = process.env.RABBITMQCTL ?? "rabbitmqctl"

/** For `requireServer`: the CLI exists and may talk to the local node. */
export const probeRabbitmqctl = () => async () => {
  await run(rabbitmqctl, ["list_connections", "-q", "--no-table-headers", "pid"], { timeout: 15_000 })
}

/** Closes every connection whose `connection_name` is `name`; resolves to how many it closed. */
export const closeConnectionsNamed = async (name: string, reason = "closed by a test"): Promise<number> => {
  const { stdout } = await run(rabbitmqctl, ["list_connections", "-q", "--no-table-headers", "pid", "client_properties"], {
    timeout: 15_000
  })
  const pids = stdout
    .split("\n")
    .filter((line) => line.includes(`{"connection_name","${name}"}`))
    .map((line) => line.split("\t")[0]!.trim())
  for (const pid of pids) await run(rabbitmqctl, ["close_connection", pid, reason], { timeout: 15_000 })
  return pids.length
}
