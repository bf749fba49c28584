/**
 * Circuit breaker: stop calling a downstream that keeps failing, and find out cheaply when it is
 * back.
 *
 * - **closed**: calls go through; `failureThreshold` failures in a row open it.
 * - **open**: calls fail at once with `CircuitOpenError` (the call is not made) until
 *   `resetTimeout` has passed since it opened.
 * - **half-open**: one call at a time goes through as a probe, the others fail at once; a failed
 *   probe opens it again, `successThreshold` successful probes in a row close it.
 *
 * A breaker is one value shared by every fiber calling the same downstream (the outbox relay's
 * Kafka producer, a session worker's HTTP client). It reads time from Effect's `Clock`, so a
 * test drives it with `TestClock`. Open turns into half-open when the breaker is next used (a
 * call or `state`): no timer fiber, so nothing to scope or stop.
 *
 * Metrics: gauge `circuit_breaker_state{breaker}` (0 closed, 1 half-open, 2 open) and counter
 * `circuit_breaker_trips_total{breaker}` (times it opened), with an optional prefix so the
 * outbox can keep its original names (`txstream_circuit_breaker_state`, …). They are written to
 * the registry of whoever uses the breaker; give each breaker its own name.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import type { Middleware } from "../messaging/Handler.ts"
import * as Outcome from "../messaging/Outcome.ts"

export type CircuitState = "closed" | "half-open" | "open"

/** A call the breaker refused without making it. */
export class CircuitOpenError extends Data.TaggedError("CircuitOpenError")<{
  readonly breaker: string
  /** `half-open`: a probe is running and this call was not it. */
  readonly state: "open" | "half-open"
  /** How long until the breaker may let a call through again. */
  readonly retryAfter: Duration.Duration
}> {
  override get message() {
    return this.state === "open"
      ? `circuit breaker "${this.breaker}" is open; it lets a probe through in ${Duration.format(this.retryAfter)}`
      : `circuit breaker "${this.breaker}" is half-open and busy with a probe`
  }
}

export interface CircuitBreakerOptions {
  /** Names the breaker in metrics (`breaker` label) and in `CircuitOpenError`. */
  readonly name: string
  /** Failures in a row that open a closed breaker. */
  readonly failureThreshold: number
  /** Time open before a probe is let through. */
  readonly resetTimeout: Duration.Input
  /** Successful probes in a row that close a half-open breaker. */
  readonly successThreshold: number
  /**
   * Which typed failures count against the downstream [all]. One that does not (a validation
   * error: the downstream answered) counts as a success. Defects always count; interruptions
   * never count either way.
   */
  readonly isFailure?: (error: unknown) => boolean
  /**
   * What a call refused while a probe runs is told to wait (`retryAfter`) [1 s, at most
   * `resetTimeout`].
   */
  readonly halfOpenRetryAfter?: Duration.Input
  /** Prepended to the metric names, e.g. `txstream_` [none]. */
  readonly metricPrefix?: string
}

export interface CircuitBreaker {
  readonly name: string
  /**
   * Runs `effect` if the breaker lets it through, and counts its result; otherwise fails with
   * `CircuitOpenError` without running it.
   */
  readonly protect: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpenError, R>
  /** The state now (an open breaker whose `resetTimeout` has passed reports, and becomes, half-open). */
  readonly state: Effect.Effect<CircuitState>
}

/** The outbox relay's breaker numbers (SPEC §2), under its environment variables' names. */
export const outboxBreakerDefaults = {
  KAFKA_FAILURE_THRESHOLD: 5,
  KAFKA_RESET_TIMEOUT: Duration.seconds(30),
  KAFKA_SUCCESS_THRESHOLD: 3
} as const

const stateValue: Record<CircuitState, number> = { closed: 0, "half-open": 1, open: 2 }

interface Ticket {
  readonly generation: number
  readonly probe: boolean
}

/**
 * A closed breaker.
 *
 * @example
 * ```ts
 * const kafka = yield* CircuitBreaker.make({ name: "kafka", failureThreshold: 5, resetTimeout: "30 seconds", successThreshold: 3 })
 * yield* kafka.protect(publisher.publish(topic, messages)) // fails with CircuitOpenError while open
 * ```
 */
export const make = (options: CircuitBreakerOptions): Effect.Effect<CircuitBreaker> =>
  Effect.contextWith((context: Context.Context<never>) => Effect.sync(() => makeWith(options, context)))

const makeWith = (options: CircuitBreakerOptions, initial: Context.Context<never>): CircuitBreaker => {
  const { name } = options
  const failureThreshold = Math.max(1, options.failureThreshold)
  const successThreshold = Math.max(1, options.successThreshold)
  const resetMillis = Duration.toMillis(Duration.fromInputUnsafe(options.resetTimeout))
  const busyWait = Duration.min(Duration.fromInputUnsafe(options.halfOpenRetryAfter ?? "1 second"), Duration.millis(resetMillis))
  const isFailure = options.isFailure ?? (() => true)
  const prefix = options.metricPrefix ?? ""
  const gauge = Metric.withAttributes(
    Metric.gauge(`${prefix}circuit_breaker_state`, { description: "Circuit breaker state: 0 closed, 1 half-open, 2 open" }),
    { breaker: name }
  )
  const trips = Metric.withAttributes(
    Metric.counter(`${prefix}circuit_breaker_trips`, { description: "Times the circuit breaker opened", incremental: true }),
    { breaker: name }
  )

  let state: CircuitState = "closed"
  let failures = 0
  let successes = 0
  let openedAt = 0
  let probing = false
  // Bumped on every change of state: a call let through before the change reports a result
  // about a downstream the breaker has since judged again, so it is ignored.
  let generation = 0

  // Every change runs inside one synchronous step together with its metric update, so no
  // interleaving of fibers can leave the gauge showing a state the breaker has left.
  const moveTo = (next: CircuitState, now: number, context: Context.Context<never>) => {
    state = next
    generation++
    failures = 0
    successes = 0
    probing = false
    if (next === "open") {
      openedAt = now
      trips.updateUnsafe(1, context)
    }
    gauge.updateUnsafe(stateValue[next], context)
  }

  const current = (now: number, context: Context.Context<never>): CircuitState => {
    if (state === "open" && now - openedAt >= resetMillis) moveTo("half-open", now, context)
    return state
  }

  gauge.updateUnsafe(stateValue.closed, initial)
  trips.updateUnsafe(0, initial)

  const nowOf = (fiber: Fiber.Fiber<unknown, unknown>) => fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()

  const admit = (now: number, context: Context.Context<never>): Exit.Exit<Ticket, CircuitOpenError> => {
    switch (current(now, context)) {
      case "closed":
        return Exit.succeed({ generation, probe: false })
      case "open":
        return Exit.fail(new CircuitOpenError({ breaker: name, state: "open", retryAfter: Duration.millis(openedAt + resetMillis - now) }))
      case "half-open":
        if (probing) return Exit.fail(new CircuitOpenError({ breaker: name, state: "half-open", retryAfter: busyWait }))
        probing = true
        return Exit.succeed({ generation, probe: true })
    }
  }

  const record = (ticket: Ticket, exit: Exit.Exit<unknown, unknown>, now: number, context: Context.Context<never>): void => {
    if (ticket.generation !== generation) return
    if (Exit.isFailure(exit) && !Cause.hasFails(exit.cause) && !Cause.hasDies(exit.cause)) {
      // Interrupted (a shutdown, an outer deadline): says nothing about the downstream.
      if (ticket.probe) probing = false
      return
    }
    const failed = Exit.isFailure(exit) && (Cause.hasDies(exit.cause) || countsAsFailure(exit.cause, isFailure))
    if (state === "closed") {
      if (!failed) failures = 0
      else if (++failures >= failureThreshold) moveTo("open", now, context)
    } else if (state === "half-open" && ticket.probe) {
      if (failed) moveTo("open", now, context)
      else if (++successes >= successThreshold) moveTo("closed", now, context)
      else probing = false
    }
  }

  return {
    name,
    // Admitting and recording each read the fiber's clock and context in the step they run in:
    // `protect` wraps every call to a downstream (every message of a worker), so it is kept to a
    // few steps of the fiber.
    protect: <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.withFiber((fiber): Effect.Effect<A, E | CircuitOpenError, R> => {
          const admitted = admit(nowOf(fiber), fiber.context)
          if (admitted._tag === "Failure") return Exit.failCause(admitted.cause)
          const ticket = admitted.value
          return Effect.onExit(restore(effect), (exit) =>
            Effect.withFiber((after) => {
              record(ticket, exit, nowOf(after), after.context)
              return Effect.void
            }))
        })
      ),
    state: Effect.withFiber((fiber) => Exit.succeed(current(nowOf(fiber), fiber.context)))
  }
}

/** `make`, under the name callers read it by: `CircuitBreaker.make({ … })`. */
export const CircuitBreaker = { make } as const

/**
 * Runs the handler behind `breaker`. While the breaker refuses calls, the handler is not called
 * and the outcome is `Outcome.retry(reason, { after: retryAfter, countsAsAttempt: false })`: the
 * runner keeps the message and runs it again once the breaker may let it through, as the same
 * attempt, so an outage of the downstream never uses up (and dead-letters) good messages. A typed failure, a defect, or an `Outcome.retry`
 * of the handler counts as a failure of the downstream; an ack or a dead letter as a success
 * (the downstream answered; the message was the problem). A `CircuitOpenError` the handler itself
 * fails with (a breaker around one of its own calls) becomes the same delayed retry.
 */
export const circuitBreaker = (breaker: CircuitBreaker): Middleware => (handler) => (received) =>
  breaker.protect(Effect.flatMap(handler(received), (outcome) =>
    outcome !== undefined && outcome._tag === "Retry" ? Effect.fail(new RetryRequested({ outcome })) : Effect.succeed(outcome)
  )).pipe(
    Effect.catch((error) => {
      if (error instanceof RetryRequested) return Effect.succeed(error.outcome)
      if (error instanceof CircuitOpenError) {
        return Effect.succeed(Outcome.retry(error.message, { after: error.retryAfter, countsAsAttempt: false }))
      }
      return Effect.fail(error)
    })
  )

/** A handler's own `Outcome.retry`, carried through `protect` as a failure so the breaker counts it. */
class RetryRequested extends Data.TaggedError("RetryRequested")<{ readonly outcome: Outcome.Outcome }> {}

const countsAsFailure = (cause: Cause.Cause<unknown>, isFailure: (error: unknown) => boolean): boolean => {
  const failure = Cause.findError(cause)
  return failure._tag === "Success" && (failure.success instanceof RetryRequested || isFailure(failure.success))
}
