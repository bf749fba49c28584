/**
 * The orders API's HTTP settings, named as the original service named them.
 *
 * `SERVER_TIMEOUT` bounds shutdown: after SIGTERM the server takes no new requests, and those
 * in flight have this long to finish before their connections are cut.
 */
import * as Config from "effect/Config"
import { intInRange, positiveDuration } from "../runtime/config.ts"

export const serverConfig = Config.all({
  port: intInRange("SERVER_PORT", 0, 65535, "a port number from 0 to 65535").pipe(Config.withDefault(8080)),
  hostname: Config.String("SERVER_HOST").pipe(Config.withDefault("0.0.0.0")),
  timeout: positiveDuration("SERVER_TIMEOUT").pipe(Config.withDefault("30 seconds" as const))
})
