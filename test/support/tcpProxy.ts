/**
 * A TCP proxy a test can cut: the fault injector for connection loss.
 *
 * Point a client at `port` instead of the server; `cut()` destroys every open connection in
 * both directions (what a broker restart or a network failure looks like to the client), and
 * `refuse(true)` drops new connections at once until `refuse(false)`, so the client's reconnect
 * attempts fail for as long as the test wants.
 */
import * as net from "node:net"

export interface TcpProxy {
  readonly port: number
  /** Destroys every connection open now; the proxy keeps listening. */
  readonly cut: () => void
  /** While true, a new connection is closed as soon as it arrives. */
  readonly refuse: (refusing: boolean) => void
  /** Connections accepted so far, refused ones included. */
  readonly accepted: () => number
  readonly close: () => Promise<void>
}

export const startTcpProxy = (target: { readonly host: string; readonly port: number }): Promise<TcpProxy> =>
  new Promise((resolve, reject) => {
    const open = new Set<net.Socket>()
    let refusing = false
    let accepted = 0
    const server = net.createServer((client) => {
      accepted++
      if (refusing) {
        client.destroy()
        return
      }
      const upstream = net.connect(target.port, target.host)
      open.add(client)
      open.add(upstream)
      const drop = () => {
        client.destroy()
        upstream.destroy()
        open.delete(client)
        open.delete(upstream)
      }
      client.on("error", drop).on("close", drop)
      upstream.on("error", drop).on("close", drop)
      client.pipe(upstream)
      upstream.pipe(client)
    })
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      if (address === null || typeof address === "string") {
        reject(new Error("proxy has no TCP address"))
        return
      }
      const cut = () => {
        for (const socket of [...open]) socket.destroy()
        open.clear()
      }
      resolve({
        port: address.port,
        cut,
        refuse: (next) => {
          refusing = next
        },
        accepted: () => accepted,
        close: () =>
          new Promise<void>((done) => {
            cut()
            server.close(() => done())
          })
      })
    })
  })

/** `url` with its host and port replaced by the proxy's. */
export const viaProxy = (url: string, proxy: TcpProxy): string => {
  const parsed = new URL(url)
  parsed.hostname = "127.0.0.1"
  parsed.port = String(proxy.port)
  return parsed.toString()
}
