/**
 * Azure Service Bus backend of SessionQueue (`@azure/service-bus`).
 *
 * Mapping: a queue is a session-enabled Service Bus queue (it must exist, created with
 * `requiresSession`); the message key is the session id, the id the message id, headers the
 * application properties, the body a binary data section. `acceptNext` and `accept` are the SDK's
 * `acceptNextSession`/`acceptSession` (peek-lock), settling goes through the session receiver,
 * `renewLock` and session state through the session's `$management` calls, `depth` is the
 * administration client's queue runtime properties and `deadLettered` a peek of
 * `<queue>/$DeadLetterQueue`. The queue's own `MaxDeliveryCount` and `LockDuration` apply.
 *
 * The clients are injectable: a test gives the administration client a pipeline policy (the SDK
 * always builds https URLs), and `makeClient` makes the ServiceBusClients (with a program's own
 * options, or for a test). ServiceBusClients are closed with the layer; an injected
 * administration client holds no connection.
 *
 * `acceptNext`'s timeout: the SDK tells the service how long to wait for a session only through
 * its client's operation timeout, and ignores an abort signal while it waits. So each distinct
 * timeout gets a client (a connection) of its own, made on first use, whose operation timeout
 * also bounds the calls on the sessions it accepts; waits shorter than 1 s are made 1 s.
 *
 * Two things the SDK does that this layer evens out:
 * - A settlement sent while the service's lock-lost detach is on its way is never answered, and
 *   the SDK waits out its operation timeout (60 s). A settlement here also watches the receiver
 *   and fails with `SessionLockLostError` as soon as the receiver is closed under it.
 * - `getSessionState` answers the state parsed as JSON when it parses; it is turned back into
 *   bytes (`JSON.stringify`), so JSON state comes back equal in value, not byte for byte.
 */
import {
  isServiceBusError,
  ServiceBusAdministrationClient,
  ServiceBusClient,
  type ServiceBusClientOptions,
  type ServiceBusReceivedMessage,
  type ServiceBusSender,
  type ServiceBusSessionReceiver
} from "@azure/service-bus"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { normalize } from "../../src/capabilities/Message.ts"
import {
  type DeadLetteredMessage,
  type LockedSession,
  SessionLockedError,
  SessionLockLostError,
  type SessionMessage,
  SessionQueue,
  SessionQueueError,
  type SessionQueueShape
} from "../../src/capabilities/SessionQueue.ts"

export interface ServiceBusSessionQueueOptions {
  /** Used to make the clients not given below. */
  readonly connectionString?: string
  /**
   * Makes the ServiceBusClients (default: from `connectionString`). Called with the retry options
   * of each client: one for sending and `accept`, and one per `acceptNext` timeout (below).
   */
  readonly makeClient?: (options: ServiceBusClientOptions) => ServiceBusClient
  /** The administration client for `depth` (default: from `connectionString`). */
  readonly administrationClient?: ServiceBusAdministrationClient
  /** How long the SDK keeps renewing a session lock on its own; default 5 minutes, 0 = never. */
  readonly autoRenewLockFor?: Duration.Input
}

/**
 * `acceptNext` waits at least this long: the SDK tells the service how long to wait for a
 * session only through a client's operation timeout, and ignores an abort signal meanwhile.
 */
export const minimumAcceptWait = 1_000

const raw = { skipParsingBodyAsJson: true } as const

const codeOf = (cause: unknown) => (isServiceBusError(cause) ? cause.code : undefined)

export const make = (options: ServiceBusSessionQueueOptions) =>
  Effect.gen(function*() {
    const fail = (operation: string, queue: string) => (cause: unknown) => new SessionQueueError({ operation, queue, cause })
    if (options.makeClient === undefined && options.connectionString === undefined) {
      return yield* Effect.fail(fail("connect", "")("a connection string or makeClient is needed"))
    }
    const makeClient = options.makeClient ?? ((o: ServiceBusClientOptions) => new ServiceBusClient(options.connectionString!, o))
    const clients: Array<ServiceBusClient> = []
    yield* Effect.addFinalizer(() => Effect.promise(() => Promise.allSettled(clients.map((c) => c.close()))))
    const newClient = (o: ServiceBusClientOptions) => {
      const c = makeClient(o)
      clients.push(c)
      return c
    }
    const client = newClient({})
    // The SDK's accept-next waits for a session as long as its client's operation timeout says,
    // and that is also how long the service is told to wait: one client per timeout asked for.
    const acceptClients = new Map<number, ServiceBusClient>()
    const acceptClient = (waitMs: number) => {
      let c = acceptClients.get(waitMs)
      if (c === undefined) {
        c = newClient({ retryOptions: { timeoutInMs: waitMs, maxRetries: 0 } })
        acceptClients.set(waitMs, c)
      }
      return c
    }
    // The development emulator serves AMQP only: its administration client would speak TLS to
    // the AMQP port. Without an injected client, `depth` says so instead of trying.
    const emulator = options.administrationClient === undefined && /(^|;)\s*UseDevelopmentEmulator\s*=\s*true/i.test(options.connectionString ?? "")
    const admin = options.administrationClient ?? (emulator ? undefined : new ServiceBusAdministrationClient(options.connectionString!))
    const autoRenewMs = Duration.toMillis(options.autoRenewLockFor ?? "5 minutes")

    const senders = new Map<string, ServiceBusSender>()
    yield* Effect.addFinalizer(() => Effect.promise(() => Promise.allSettled([...senders.values()].map((s) => s.close()))))
    const senderFor = (queue: string) => {
      let sender = senders.get(queue)
      if (sender === undefined) {
        sender = client.createSender(queue)
        senders.set(queue, sender)
      }
      return sender
    }

    const lockedSession = (queue: string, receiver: ServiceBusSessionReceiver): LockedSession => {
      const sessionId = receiver.sessionId
      let released = false
      const received = new Map<number, ServiceBusReceivedMessage>()
      const lost = () => new SessionLockLostError({ queue, sessionId })
      /** The SDK's failure as ours: lock lost when the SDK says so or closed the receiver itself. */
      const failure = (operation: string) => (cause: unknown) =>
        codeOf(cause) === "SessionLockLost" || (!released && receiver.isClosed)
          ? lost()
          : new SessionQueueError({ operation, queue, cause })
      const call = <A>(operation: string, f: () => Promise<A>) =>
        Effect.tryPromise({ try: f, catch: failure(operation) })
      /** Resolves once the receiver is closed under us (lock lost), however the SDK learnt it. */
      const closedUnderUs = Effect.sync(() => receiver.isClosed).pipe(
        Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (closed) => closed }),
        Effect.andThen(Effect.fail(lost()))
      )
      const settle = (operation: string, message: SessionMessage, f: (m: ServiceBusReceivedMessage) => Promise<void>) =>
        Effect.suspend(() => {
          const m = received.get(message.sequenceNumber)
          // Not held (settled already, or never received here): the first settlement counted.
          if (m === undefined) return Effect.void
          return Effect.raceFirst(call(operation, () => f(m)), closedUnderUs).pipe(
            Effect.tap(() => Effect.sync(() => received.delete(message.sequenceNumber)))
          )
        })
      const toMessage = (m: ServiceBusReceivedMessage): SessionMessage => ({
        message: {
          id: m.messageId === undefined ? "" : String(m.messageId),
          key: m.sessionId ?? sessionId,
          headers: Object.fromEntries(Object.entries(m.applicationProperties ?? {}).map(([k, v]) => [k, String(v)])),
          body: m.body instanceof Uint8Array ? new Uint8Array(m.body) : new TextEncoder().encode(JSON.stringify(m.body))
        },
        sequenceNumber: Number(m.sequenceNumber),
        attempt: (m.deliveryCount ?? 0) + 1,
        enqueuedAt: m.enqueuedTimeUtc?.getTime() ?? 0
      })
      return {
        queue,
        sessionId,
        lockedUntil: Effect.sync(() => receiver.sessionLockedUntilUtc?.getTime() ?? 0),
        receive: (max, maxWait) =>
          call("receive", () => receiver.receiveMessages(max, { maxWaitTimeInMs: Duration.toMillis(maxWait) })).pipe(
            Effect.map((messages) =>
              messages.map((m) => {
                const message = toMessage(m)
                received.set(message.sequenceNumber, m)
                return message
              })
            )
          ),
        complete: (message) => settle("complete", message, (m) => receiver.completeMessage(m)),
        // Service Bus settles one message at a time and keeps the state apart: the state first, so
        // a lock lost in between leaves messages to redeliver that the state counts as done (a
        // checkpointing handler skips them), never completed messages the state does not count.
        completeAll: (messages, options) =>
          Effect.gen(function*() {
            if (options !== undefined && "state" in options) {
              const state = options.state
              yield* call("setState", () => receiver.setSessionState(state === undefined ? null : Buffer.from(state)))
            }
            for (const message of messages) yield* settle("complete", message, (m) => receiver.completeMessage(m))
          }),
        abandon: (message) => settle("abandon", message, (m) => receiver.abandonMessage(m)),
        deadLetter: (message, { description, reason }) =>
          settle("deadLetter", message, (m) =>
            receiver.deadLetterMessage(m, { deadLetterReason: reason, deadLetterErrorDescription: description ?? "" })),
        renewLock: call("renewLock", () => receiver.renewSessionLock()).pipe(Effect.map((until) => until.getTime())),
        getState: call("getState", () => receiver.getSessionState()).pipe(Effect.map(stateBytes)),
        setState: (state) => call("setState", () => receiver.setSessionState(state === undefined ? null : Buffer.from(state))),
        release: Effect.suspend(() => {
          if (released) return Effect.void
          released = true
          return Effect.promise(() => receiver.close().catch(() => undefined))
        })
      }
    }

    /** Scoped: the receiver is closed (the session released) with the scope. */
    const opened = <E>(queue: string, open: Effect.Effect<ServiceBusSessionReceiver, E>) =>
      Effect.acquireRelease(Effect.map(open, (receiver) => lockedSession(queue, receiver)), (session) => session.release)

    const service: SessionQueueShape = {
      send: (queue, messages) =>
        Effect.tryPromise({
          try: async () => {
            const sender = senderFor(queue)
            let batch = await sender.createMessageBatch()
            for (const m of messages.map(normalize)) {
              const message = { body: Buffer.from(m.body), sessionId: m.key, messageId: m.id, applicationProperties: { ...m.headers } }
              if (batch.tryAddMessage(message)) continue
              if (batch.count === 0) throw new Error(`message ${m.id} is larger than a batch may be (${batch.maxSizeInBytes} bytes)`)
              await sender.sendMessages(batch)
              batch = await sender.createMessageBatch()
              if (!batch.tryAddMessage(message)) throw new Error(`message ${m.id} is larger than a batch may be (${batch.maxSizeInBytes} bytes)`)
            }
            if (batch.count > 0) await sender.sendMessages(batch)
          },
          catch: fail("send", queue)
        }),
      acceptNext: (queue, { timeout }) =>
        Effect.gen(function*() {
          const waitMs = Math.max(minimumAcceptWait, Duration.toMillis(timeout))
          const next = yield* Effect.tryPromise({
            try: () => acceptNext(acceptClient(waitMs), queue, autoRenewMs),
            catch: fail("acceptNext", queue)
          })
          return next === undefined ? Option.none() : Option.some(yield* opened(queue, Effect.succeed(next)))
        }),
      accept: (queue, sessionId) =>
        opened(
          queue,
          Effect.tryPromise({
            try: () => client.acceptSession(queue, sessionId, { ...raw, maxAutoLockRenewalDurationInMs: autoRenewMs }),
            catch: (cause) =>
              codeOf(cause) === "SessionCannotBeLocked"
                ? new SessionLockedError({ queue, sessionId })
                : new SessionQueueError({ operation: "accept", queue, cause })
          })
        ),
      depth: (queue) =>
        Effect.tryPromise({
          try: () =>
            admin === undefined
              ? Promise.reject(new Error("the development emulator has no administration API to read the queue depth from"))
              : admin.getQueueRuntimeProperties(queue),
          catch: fail("depth", queue)
        }).pipe(Effect.map((p) => ({ active: p.activeMessageCount, deadLettered: p.deadLetterMessageCount }))),
      deadLettered: (queue, max) =>
        Effect.tryPromise({
          try: async () => {
            const receiver = client.createReceiver(queue, { subQueueType: "deadLetter", ...raw })
            try {
              return await receiver.peekMessages(max)
            } finally {
              await receiver.close()
            }
          },
          catch: fail("deadLettered", queue)
        }).pipe(Effect.map((messages) => messages.map(deadLettered)))
    }
    return service
  })

/** The next free session, or undefined when the service's wait ran out. */
const acceptNext = async (client: ServiceBusClient, queue: string, autoRenewMs: number) => {
  try {
    return await client.acceptNextSession(queue, { ...raw, maxAutoLockRenewalDurationInMs: autoRenewMs })
  } catch (cause) {
    const code = codeOf(cause)
    // ServiceTimeout: the service's answer; SessionCannotBeLocked: its timeout detach came late.
    if (code === "ServiceTimeout" || code === "SessionCannotBeLocked") return undefined
    throw cause
  }
}

const stateBytes = (state: unknown): Option.Option<Uint8Array> =>
  state === undefined || state === null
    ? Option.none()
    : Option.some(state instanceof Uint8Array ? new Uint8Array(state) : new TextEncoder().encode(JSON.stringify(state)))

const deadLettered = (m: ServiceBusReceivedMessage): DeadLetteredMessage => ({
  message: {
    id: m.messageId === undefined ? "" : String(m.messageId),
    key: m.sessionId ?? "",
    headers: Object.fromEntries(Object.entries(m.applicationProperties ?? {}).map(([k, v]) => [k, String(v)])),
    body: m.body instanceof Uint8Array ? new Uint8Array(m.body) : new TextEncoder().encode(JSON.stringify(m.body))
  },
  sequenceNumber: Number(m.sequenceNumber),
  reason: m.deadLetterReason ?? "",
  description: m.deadLetterErrorDescription === "" ? undefined : m.deadLetterErrorDescription
})

export const layer = (options: ServiceBusSessionQueueOptions): Layer.Layer<SessionQueue, SessionQueueError> =>
  Layer.effect(SessionQueue, Effect.map(make(options), SessionQueue.of))
