/**
 * Handlers and middleware: what a worker writes, and how resilience wraps it.
 *
 * A handler gets what was received (never the means to settle it) and returns an `Outcome`, or
 * nothing, meaning ack; a typed failure or a defect counts as a retry. A middleware takes a
 * handler and returns one (Watermill's shape): a timeout, a retry with a `Schedule`, a circuit
 * breaker around a downstream call, a dead-letter publisher (`src/resilience/`). `stack` applies
 * middleware so that the first listed runs outermost.
 */
import type * as Effect from "effect/Effect"
import type { Received } from "../capabilities/Delivery.ts"
import type { Outcome } from "./Outcome.ts"

export type Handler<E, R> = (received: Received) => Effect.Effect<Outcome | void, E, R>

/** One outcome per message, in the order given. */
export type BatchHandler<E, R> = (batch: ReadonlyArray<Received>) => Effect.Effect<ReadonlyArray<Outcome | void>, E, R>

/** Wraps a handler; may add failures (`E2`, e.g. a timeout) or needs (`R2`, e.g. a Publisher). */
export type Middleware<E2 = never, R2 = never> = <E, R>(handler: Handler<E, R>) => Handler<E | E2, R | R2>

/**
 * Applies middleware to a handler; the first listed runs outermost (it sees the message first and
 * the outcome last).
 */
export function stack<E, R>(handler: Handler<E, R>): Handler<E, R>
export function stack<E, R, E1, R1>(handler: Handler<E, R>, m1: Middleware<E1, R1>): Handler<E | E1, R | R1>
export function stack<E, R, E1, R1, E2, R2>(
  handler: Handler<E, R>,
  m1: Middleware<E1, R1>,
  m2: Middleware<E2, R2>
): Handler<E | E1 | E2, R | R1 | R2>
export function stack<E, R, E1, R1, E2, R2, E3, R3>(
  handler: Handler<E, R>,
  m1: Middleware<E1, R1>,
  m2: Middleware<E2, R2>,
  m3: Middleware<E3, R3>
): Handler<E | E1 | E2 | E3, R | R1 | R2 | R3>
export function stack<E, R, E1, R1, E2, R2, E3, R3, E4, R4>(
  handler: Handler<E, R>,
  m1: Middleware<E1, R1>,
  m2: Middleware<E2, R2>,
  m3: Middleware<E3, R3>,
  m4: Middleware<E4, R4>
): Handler<E | E1 | E2 | E3 | E4, R | R1 | R2 | R3 | R4>
export function stack<E, R, E1, R1, E2, R2, E3, R3, E4, R4, E5, R5>(
  handler: Handler<E, R>,
  m1: Middleware<E1, R1>,
  m2: Middleware<E2, R2>,
  m3: Middleware<E3, R3>,
  m4: Middleware<E4, R4>,
  m5: Middleware<E5, R5>
): Handler<E | E1 | E2 | E3 | E4 | E5, R | R1 | R2 | R3 | R4 | R5>
export function stack<E, R, E1, R1, E2, R2, E3, R3, E4, R4, E5, R5, E6, R6>(
  handler: Handler<E, R>,
  m1: Middleware<E1, R1>,
  m2: Middleware<E2, R2>,
  m3: Middleware<E3, R3>,
  m4: Middleware<E4, R4>,
  m5: Middleware<E5, R5>,
  m6: Middleware<E6, R6>
): Handler<E | E1 | E2 | E3 | E4 | E5 | E6, R | R1 | R2 | R3 | R4 | R5 | R6>
export function stack(handler: Handler<unknown, unknown>, ...middleware: ReadonlyArray<Middleware<unknown, unknown>>) {
  return middleware.reduceRight((inner: Handler<unknown, unknown>, wrap) => wrap(inner), handler)
}
