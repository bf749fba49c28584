/**
 * A TCP port on the loopback that nothing listens on, for tests of what a layer does when its
 * server cannot be reached: it was bound a moment ago and closed, so a connect is refused at once.
 */
import { createServer } from "node:net"

export const closedPort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
