import { describe, expect, test } from "bun:test"
import * as Cause from "effect/Cause"
import { BrokerError } from "../../src/capabilities/BrokerError.ts"

describe("BrokerError", () => {
  test("names the operation and the address, with the password masked wherever the error is printed", () => {
    const error = new BrokerError({
      operation: "connect",
      broker: "amqp://app:s3cret@rabbit:5672/prod",
      // Drivers quote the URL they were given in their own messages.
      cause: new Error("getaddrinfo ENOTFOUND rabbit (amqp://app:s3cret@rabbit:5672/prod)")
    })
    expect(error._tag).toBe("BrokerError")
    expect(error.broker).toBe("amqp://app:***@rabbit:5672/prod")
    expect(error.message).toBe(
      "connect to amqp://app:***@rabbit:5672/prod failed: getaddrinfo ENOTFOUND rabbit (amqp://app:***@rabbit:5672/prod)"
    )
    // What a program prints when it fails, the cause chain included.
    expect(Cause.pretty(Cause.fail(error))).not.toContain("s3cret")
    expect(Cause.pretty(Cause.fail(error))).toContain("ENOTFOUND rabbit")
  })

  test("an address without credentials is left as it is", () => {
    const error = new BrokerError({ operation: "producer.connect", broker: "k1:9092,k2:9092", cause: "refused" })
    expect(error.message).toBe("producer.connect to k1:9092,k2:9092 failed: refused")
  })
})
