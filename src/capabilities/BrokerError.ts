/**
 * BrokerError: a broker could not be reached or set up (connecting, opening the producer or the
 * admin client). It is what building a broker layer fails with; `PublisherError` and
 * `SubscriberError` stay for what goes wrong publishing and consuming once connected.
 *
 * `broker` names the address tried (a URL, `host:port` pairs). Passwords never leave through it:
 * they are masked when the error is made, in the field and in the cause too, because a driver's
 * error text may quote the URL it was given and `Cause.pretty` prints the cause chain.
 */
import * as Data from "effect/Data"
import { redactCredentials } from "../runtime/config.ts"
import { describeCause } from "./describeCause.ts"

export class BrokerError extends Data.TaggedError("BrokerError")<{
  /** What was attempted: `connect`, `producer.connect`, `admin.connect`. */
  readonly operation: string
  /** The address tried, password masked. */
  readonly broker: string
  readonly cause: unknown
}> {
  constructor(args: { readonly operation: string; readonly broker: string; readonly cause: unknown }) {
    super({ ...args, broker: redactCredentials(args.broker), cause: redactCause(args.cause) })
  }

  override get message() {
    return `${this.operation} to ${this.broker} failed: ${describeCause(this.cause)}`
  }
}

const redactCause = (cause: unknown): unknown => {
  if (typeof cause === "string") return redactCredentials(cause)
  if (!(cause instanceof Error) || redactCredentials(cause.message) === cause.message) return cause
  const masked = new Error(redactCredentials(cause.message))
  masked.name = cause.name
  if (cause.stack !== undefined) masked.stack = redactCredentials(cause.stack)
  return masked
}
