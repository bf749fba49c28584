/**
 * BrokerError: a broker could not be reached or set up (connecting, opening the producer or the
 * admin client). It is what building a broker layer fails with; `PublisherError` and
 * `SubscriberError` stay for what goes wrong publishing and consuming once connected.
 *
 * `broker` names the address tried (a URL, `host:port` pairs). Passwords never leave through it:
 * they are masked when the error is made, in the field and in the message built from the cause,
 * because a driver's error text may quote the URL it was given.
 */
import * as Data from "effect/Data"
import { redactCredentials } from "../runtime/config.ts"
import { describeCause } from "./Publisher.ts"

export class BrokerError extends Data.TaggedError("BrokerError")<{
  /** What was attempted: `connect`, `producer.connect`, `admin.connect`. */
  readonly operation: string
  /** The address tried, password masked. */
  readonly broker: string
  readonly cause: unknown
}> {
  constructor(args: { readonly operation: string; readonly broker: string; readonly cause: unknown }) {
    super({ ...args, broker: redactCredentials(args.broker) })
  }

  override get message() {
    return redactCredentials(`${this.operation} to ${this.broker} failed: ${describeCause(this.cause)}`)
  }
}
