/**
 * Service Bus test server, built from the SDK's protocol, not Azure.
 *
 * It speaks the part of the Service Bus AMQP 1.0 protocol that the unmodified `@azure/service-bus`
 * SDK (7.9.5) uses for session queues, so the Service Bus backend can be tested on a machine with
 * no container engine and no namespace: anonymous SASL and `$cbs` put-token; sending (session
 * id as `group_id`, batches in message format 0x80013700); accepting a named or the next free
 * session (long-polled up to the link's `com.microsoft:timeout`); credit and drain; settlement
 * (complete, abandon, dead-letter) answered with an explicit settlement; the `$management`
 * operations for session locks, session state and peeking; lock expiry; and the queue runtime
 * properties of the administration client over plain HTTP (the client must be given a pipeline
 * policy that sends its https requests here).
 *
 * The state (queues, sessions, locks, delivery counts, dead letters) is the memory backend's
 * `SessionStore` on the wall clock; this file is only the wire. What it cannot show: TLS, real
 * SAS or Entra auth, the service's own timeouts, throttling, exact error texts, partitioning.
 *
 * Queues come into being when first used. Stored message bodies are the encoded AMQP messages as
 * the SDK sent them, so they go back out with every property the sender set.
 */
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http"
import type { Server as NetServer, Socket } from "node:net"
import { ServiceBusAdministrationClient } from "@azure/service-bus"
import rhea, { type Connection, type EventContext, type Receiver, type Sender } from "rhea"
import { type Grant, lockLost, type Settlement, SessionStore, type StoredMessage } from "../../layers/memory/sessionStore.ts"

export interface ServiceBusTestServerOptions {
  readonly lockDurationMs?: number
  readonly maxDeliveryCount?: number
  /** Largest message (and batch) a sender may send, announced on its link. */
  readonly maxMessageSize?: number
}

export interface ServiceBusTestServer {
  /** `Endpoint=sb://127.0.0.1:<port>;...;UseDevelopmentEmulator=true`: plain AMQP on `port`. */
  readonly connectionString: string
  readonly port: number
  /** Where the administration client's requests must go instead of https://<namespace>. */
  readonly httpUrl: string
  /** Fault hook: ends the session's lock now and detaches its receiver with session-lock-lost. */
  readonly expireSessionLock: (queue: string, sessionId: string) => boolean
  /** Fault hook: cuts every client connection without a close frame. */
  readonly dropConnections: () => void
  /** Accept-next links waiting for a session on the queue. */
  readonly pendingAccepts: (queue: string) => number
  /** Sessions locked now, for tests that wait on the server's view. */
  readonly lockedSessions: (queue: string) => ReadonlyArray<string>
  /** Messages of a session not settled yet (handed out or not). */
  readonly sessionMessages: (queue: string, sessionId: string) => number
  readonly depth: (queue: string) => { readonly active: number; readonly deadLettered: number }
  readonly close: () => Promise<void>
}

const condition = {
  timeout: "com.microsoft:timeout",
  sessionCannotBeLocked: "com.microsoft:session-cannot-be-locked",
  sessionLockLost: "com.microsoft:session-lock-lost",
  messageLockLost: "com.microsoft:message-lock-lost",
  deadLetter: "com.microsoft:dead-letter",
  notImplemented: "amqp:not-implemented",
  notFound: "amqp:not-found"
} as const

const sessionFilter = "com.microsoft:session-filter"
const batchFormat = 0x80013700
const deadLetterSuffix = "/$DeadLetterQueue"
const managementSuffix = "/$management"
/** .NET ticks (100 ns since 0001-01-01) at the Unix epoch. */
const epochTicks = 621355968000000000n

/** A long in .NET ticks, as 8 big-endian bytes: a JS number cannot carry it exactly. */
const ticks = (epochMs: number) => {
  const bytes = Buffer.alloc(8)
  bytes.writeBigInt64BE(BigInt(epochMs) * 10000n + epochTicks)
  return rhea.types.wrap_long(bytes)
}


/** rhea's link internals that its typings leave out: the attach frames sent and received. */
interface Frames {
  readonly local: { attach: Record<string, unknown> & { properties?: Record<string, unknown> } }
  readonly remote: { attach: { source?: unknown; target?: unknown; properties?: Record<string, unknown> } }
}
const frames = (link: Sender | Receiver) => link as unknown as Frames
const remoteTarget = (link: Sender | Receiver) => (frames(link).remote.attach.target as { address?: string } | undefined)?.address ?? ""

/** A decoded AMQP message: rhea's two typings of it disagree, so one loose shape is used here. */
type AmqpMessage = {
  body?: unknown
  message_id?: unknown
  group_id?: unknown
  reply_to?: unknown
  correlation_id?: unknown
  delivery_count?: number
  application_properties?: Record<string, unknown>
  message_annotations?: Record<string, unknown>
}
const decode = (bytes: Buffer) => rhea.message.decode(bytes) as unknown as AmqpMessage
const encode = (message: AmqpMessage) => Buffer.from(rhea.message.encode(message as never))
const send = (link: Sender, message: AmqpMessage, tag?: Buffer) => link.send(message as never, tag)
const outcomes = rhea.message as unknown as Record<"accepted" | "modified" | "rejected", (o?: unknown) => { described: () => unknown }>
const rejected = (condition: string, description: string) => outcomes.rejected({ error: { condition, description } }).described()
/** The outcome a settlement is confirmed with: the client's own, without an error in it. */
const echo = {
  complete: () => outcomes.accepted().described(),
  abandon: () => outcomes.modified({ delivery_failed: true }).described(),
  deadLetter: () => outcomes.rejected({}).described()
} as const

const uuidBytes = (uuid: string) => Buffer.from(uuid.replaceAll("-", ""), "hex")

interface Held {
  readonly link: Sender
  readonly connection: Connection
  readonly queue: string
  readonly grant: Grant
  /** Message lock tokens by the id of the delivery that carried them. */
  readonly deliveries: Map<number, string>
  timer: ReturnType<typeof setTimeout> | undefined
}

interface PendingAccept {
  readonly link: Sender
  readonly connection: Connection
  readonly queue: string
  readonly timer: ReturnType<typeof setTimeout>
}

export const startServiceBusTestServer = async (options: ServiceBusTestServerOptions = {}): Promise<ServiceBusTestServer> => {
  const lockDurationMs = options.lockDurationMs ?? 60_000
  // GUID lock tokens: a message's token goes to the SDK as its 16-byte delivery tag.
  const store = new SessionStore({ lockDurationMs, maxDeliveryCount: options.maxDeliveryCount ?? 10, newToken: () => crypto.randomUUID() })
  const held = new Set<Held>()
  let pending: Array<PendingAccept> = []
  /** Links on which replies to `$cbs` and `$management` requests go, by name and target address. */
  const replyLinks = new Map<string, Sender>()
  /** Every link that ever held a session: its settlements are the server's to answer. */
  const sessionLinks = new WeakSet<Sender>()
  const sockets = new Set<Socket>()

  // Settlement is explicit: a send is accepted once stored, and abandon (modified) must stay
  // distinct from release.
  const container = rhea.create_container({ id: "servicebus-test-server", autoaccept: false, treat_modified_as_released: false } as never)
  container.sasl_server_mechanisms.enable_anonymous()
  // The SDK's emulator mode logs in with the key name and no password; any login is accepted.
  container.sasl_server_mechanisms.enable_plain(() => true)

  // --- sessions -------------------------------------------------------------------------------

  const heldSession = (queue: string, sessionId: string) =>
    [...held].find((h) => h.queue === queue && h.grant.sessionId === sessionId)

  const lockSession = (link: Sender, connection: Connection, queue: string, grant: Grant) => {
    const h: Held = { link, connection, queue, grant, deliveries: new Map(), timer: undefined }
    held.add(h)
    sessionLinks.add(link)
    link.set_source({ address: queue, filter: { [sessionFilter]: grant.sessionId } })
    frames(link).local.attach.properties = { ...frames(link).local.attach.properties, "com.microsoft:locked-until-utc": ticks(grant.lockedUntil) }
    watchLock(h, grant.lockedUntil)
    return h
  }

  /** Detaches with session-lock-lost once the lock's time is up, unless it was renewed. */
  const watchLock = (h: Held, until: number) => {
    if (h.timer !== undefined) clearTimeout(h.timer)
    h.timer = setTimeout(() => {
      const now = Date.now()
      const current = store.lockedUntil(h.queue, h.grant.sessionId, h.grant.lockToken, now)
      if (current === lockLost) loseLock(h)
      else watchLock(h, current)
    }, Math.max(0, until - Date.now()) + 1)
  }

  const loseLock = (h: Held) => {
    forget(h)
    h.link.close({ condition: condition.sessionLockLost, description: `The session lock has expired on the session with id ${h.grant.sessionId}.` })
    servePending(h.queue)
  }

  const forget = (h: Held) => {
    if (h.timer !== undefined) clearTimeout(h.timer)
    held.delete(h)
  }

  const release = (h: Held) => {
    forget(h)
    store.release(h.queue, h.grant.sessionId, h.grant.lockToken, Date.now())
    servePending(h.queue)
  }

  /** Hands sessions that came free to accept-next links waiting for one, oldest first. */
  const servePending = (queue: string) => {
    for (const p of [...pending]) {
      if (p.queue !== queue) continue
      if (!p.link.is_remote_open()) {
        dropPending(p)
        continue
      }
      const grant = store.acceptNext(queue, Date.now())
      if (grant === undefined) return
      dropPending(p)
      const h = lockSession(p.link, p.connection, queue, grant)
      p.link.open()
      pump(h)
    }
  }

  const dropPending = (p: PendingAccept) => {
    clearTimeout(p.timer)
    pending = pending.filter((x) => x !== p)
  }

  /** Sends the session's next messages while the receiver has credit; answers a drain at once. */
  const pump = (h: Held) => {
    const link = h.link
    if (!held.has(h) || !link.is_open()) return
    // rhea counts credit down only when a transfer is written, so transfers queued in this turn
    // are taken off by hand.
    const internals = link as unknown as { credit: number; session: { outgoing: { next_pending_delivery: number } } }
    const written = internals.session.outgoing.next_pending_delivery
    let queued = [...h.deliveries.keys()].filter((id) => id >= written).length
    while (link.sendable() && internals.credit - queued > 0) {
      const now = Date.now()
      const out = store.receive(h.queue, h.grant.sessionId, h.grant.lockToken, 1, now)
      if (out === lockLost) return loseLock(h)
      const m = out[0]
      if (m === undefined) break
      const until = store.lockedUntil(h.queue, h.grant.sessionId, h.grant.lockToken, now)
      const delivery = send(link, outgoing(m, until === lockLost ? now : until), uuidBytes(m.lockToken!))
      h.deliveries.set(delivery.id, m.lockToken!)
      queued++
    }
    // The SDK drains after its wait and gives up on the link if the answer is late (200 ms).
    if ((link as unknown as { _draining: boolean })._draining) link.set_drained(true)
  }

  const outgoing = (m: StoredMessage, lockedUntil: number): AmqpMessage => {
    const message = decode(Buffer.from(m.message.body))
    message.message_annotations = {
      ...message.message_annotations,
      "x-opt-sequence-number": rhea.types.wrap_long(m.sequenceNumber),
      "x-opt-enqueued-time": new Date(m.enqueuedAt),
      "x-opt-locked-until": new Date(lockedUntil)
    }
    // AMQP counts earlier failed deliveries; the store counts this one too.
    message.delivery_count = m.attempts - 1
    return message
  }

  const settle = (context: EventContext, settlement: Settlement | "defer") => {
    const delivery = context.delivery!
    const h = [...held].find((x) => x.link === context.sender)
    // Replies on $cbs and $management links are settled by the client alone.
    if (h === undefined && !sessionLinks.has(context.sender!)) return
    const token = h?.deliveries.get(delivery.id)
    if (h === undefined || token === undefined) {
      return delivery.update(true, rejected(condition.sessionLockLost, "the session lock was lost"))
    }
    if (settlement === "defer") {
      return delivery.update(true, rejected(condition.notImplemented, "defer is not supported by the test server"))
    }
    h.deliveries.delete(delivery.id)
    const result = store.settle(h.queue, h.grant.sessionId, h.grant.lockToken, token, settlement, Date.now())
    if (result === lockLost) {
      delivery.update(true, rejected(condition.sessionLockLost, "the session lock was lost"))
      return loseLock(h)
    }
    if (result === "already-settled") {
      return delivery.update(true, rejected(condition.messageLockLost, "the message was already settled"))
    }
    // Settled by the server in return: the SDK waits for this, not for its own disposition.
    delivery.update(true, echo[settlement._tag]())
    if (settlement._tag === "abandon") pump(h)
  }

  // --- links ------------------------------------------------------------------------------------

  container.on("sender_open", (context: EventContext) => {
    const link = context.sender!
    const connection = context.connection
    const source = frames(link).remote.attach.source as { address?: string; filter?: Record<string, unknown> } | undefined
    const address = source?.address ?? ""
    if (address === "$cbs" || address.endsWith(managementSuffix)) {
      // The SDK's reply_to is the reply link's name ($cbs) or its target address ($management).
      replyLinks.set(link.name, link)
      if (remoteTarget(link) !== "") replyLinks.set(remoteTarget(link), link)
      return
    }
    if (source?.filter === undefined || !(sessionFilter in source.filter)) {
      return link.close({ condition: condition.notImplemented, description: "the test server serves session receivers only" })
    }
    const queue = address
    const requested = unwrap(source.filter[sessionFilter])
    const now = Date.now()
    if (typeof requested === "string") {
      const grant = store.accept(queue, requested, now)
      if (grant === "locked") {
        noSession(link)
        return link.close({ condition: condition.sessionCannotBeLocked, description: `The requested session '${requested}' cannot be accepted. It may be locked by another receiver.` })
      }
      return lockSession(link, connection, queue, grant)
    }
    const grant = store.acceptNext(queue, now)
    if (grant !== undefined) return lockSession(link, connection, queue, grant)
    // Service Bus long-polls accept-next: the attach is answered once a session comes free, or
    // with a null source and a timeout detach. rhea opens a link as soon as the peer attaches,
    // so the open is taken back here and done later.
    holdAttach(link)
    const timeoutMs = Number(frames(link).remote.attach.properties?.["com.microsoft:timeout"] ?? 60_000)
    const p: PendingAccept = {
      link,
      connection,
      queue,
      timer: setTimeout(() => {
        dropPending(p)
        noSession(link)
        link.open()
        link.close({ condition: condition.timeout, description: "no unlocked session with messages was available before the timeout" })
      }, Math.max(0, timeoutMs))
    }
    pending.push(p)
  })

  container.on("receiver_open", (context: EventContext) => {
    const link = context.receiver!
    const address = remoteTarget(link)
    if (address === "$cbs" || address.endsWith(managementSuffix)) return
    frames(link).local.attach["max_message_size"] = options.maxMessageSize ?? 1024 * 1024
  })

  container.on("sendable", (context: EventContext) => {
    const h = [...held].find((x) => x.link === context.sender)
    if (h !== undefined) pump(h)
  })
  container.on("sender_draining", (context: EventContext) => {
    const h = [...held].find((x) => x.link === context.sender)
    if (h !== undefined) pump(h)
    else context.sender?.set_drained(true)
  })

  container.on("accepted", (context: EventContext) => settle(context, { _tag: "complete" }))
  container.on("released", (context: EventContext) => settle(context, { _tag: "abandon" }))
  container.on("modified", (context: EventContext) => {
    const state = context.delivery?.remote_state as { undeliverable_here?: boolean } | undefined
    settle(context, state?.undeliverable_here === true ? "defer" : { _tag: "abandon" })
  })
  container.on("rejected", (context: EventContext) => {
    const error = (context.delivery?.remote_state as { error?: { condition?: string; info?: Record<string, unknown> } } | undefined)?.error
    const info = error?.info ?? {}
    settle(context, {
      _tag: "deadLetter",
      reason: String(info["DeadLetterReason"] ?? error?.condition ?? "rejected"),
      description: info["DeadLetterErrorDescription"] === undefined ? undefined : String(info["DeadLetterErrorDescription"])
    })
  })

  const closed = (link: Sender | undefined) => {
    if (link === undefined) return
    const h = [...held].find((x) => x.link === link)
    if (h !== undefined) release(h)
    for (const p of pending) if (p.link === link) dropPending(p)
    for (const [address, reply] of replyLinks) if (reply === link) replyLinks.delete(address)
  }
  container.on("sender_close", (context: EventContext) => closed(context.sender))

  container.on("disconnected", (context: EventContext) => {
    for (const h of [...held]) if (h.connection === context.connection) release(h)
    for (const p of [...pending]) if (p.connection === context.connection) dropPending(p)
    for (const [address, reply] of replyLinks) if (reply.connection === context.connection) replyLinks.delete(address)
  })
  // A client that goes away mid-frame is the client's problem, not the server's.
  container.on("error", () => {})

  // --- messages in: sends, $cbs and $management requests ----------------------------------------

  container.on("message", (context: EventContext) => {
    const link = context.receiver!
    const delivery = context.delivery!
    const address = remoteTarget(link)
    const request = context.message as unknown as AmqpMessage
    if (address === "$cbs") return answer(context, cbs(request))
    if (address.endsWith(managementSuffix)) return answer(context, management(address.slice(0, -managementSuffix.length), request))
    const raw = (context as unknown as { format?: number }).format === batchFormat
      ? batchParts(context.message as unknown as Buffer)
      : [encode(request)]
    const messages = raw.map((bytes) => ({ bytes, decoded: decode(bytes) }))
    const missing = messages.find((m) => typeof m.decoded.group_id !== "string")
    if (missing !== undefined) {
      return delivery.update(true, rejected("amqp:invalid-field", "a message to a session queue needs a session id (group_id)"))
    }
    store.send(
      address,
      messages.map(({ bytes, decoded }) => ({
        id: decoded.message_id === undefined ? crypto.randomUUID() : String(decoded.message_id),
        key: decoded.group_id as string,
        headers: {},
        body: new Uint8Array(bytes)
      })),
      Date.now()
    )
    delivery.accept()
    for (const h of held) if (h.queue === address) pump(h)
    servePending(address)
  })

  /** The encoded messages inside a batch envelope: one per data section. */
  const batchParts = (envelope: Buffer): Array<Buffer> => {
    const body = decode(envelope).body as { content: Buffer | Array<Buffer>; multiple?: boolean }
    return (body.multiple === true ? (body.content as Array<Buffer>) : [body.content as Buffer]).map((b) => Buffer.from(b))
  }

  interface Reply {
    readonly status: number
    readonly body?: unknown
    readonly condition?: string
    readonly description?: string
  }

  const answer = (context: EventContext, reply: Reply) => {
    const request = context.message as unknown as AmqpMessage
    context.delivery!.accept()
    const link = replyLinks.get(String(request.reply_to))
    if (link === undefined) return
    send(link, {
      correlation_id: request.message_id,
      application_properties: {
        // $cbs reads the kebab-case keys, $management replies carry camelCase (peek checks it).
        "status-code": reply.status,
        statusCode: reply.status,
        "status-description": reply.description ?? "",
        statusDescription: reply.description ?? "",
        ...(reply.condition === undefined ? {} : { "error-condition": reply.condition, errorCondition: reply.condition })
      },
      body: reply.body ?? {}
    })
  }

  const cbs = (request: AmqpMessage): Reply =>
    request.application_properties?.["operation"] === "put-token"
      ? { status: 202, description: "Accepted" }
      : { status: 400, description: `unknown $cbs operation ${String(request.application_properties?.["operation"])}` }

  const management = (entity: string, request: AmqpMessage): Reply => {
    const operation = String(request.application_properties?.["operation"] ?? "")
    const body = (request.body ?? {}) as Record<string, unknown>
    const now = Date.now()
    if (entity.endsWith(deadLetterSuffix)) {
      if (operation !== "com.microsoft:peek-message") return notSupported(operation)
      const queue = entity.slice(0, -deadLetterSuffix.length)
      const dead = store.deadLettered(queue, longValue(body["from-sequence-number"]), Number(body["message-count"] ?? 1), now)
      return peekReply(dead.map((d) => {
        const message = decode(Buffer.from(d.message.body))
        message.application_properties = {
          ...message.application_properties,
          DeadLetterReason: d.reason,
          ...(d.description === undefined ? {} : { DeadLetterErrorDescription: d.description })
        }
        message.message_annotations = {
          ...message.message_annotations,
          "x-opt-sequence-number": rhea.types.wrap_long(d.sequenceNumber),
          "x-opt-enqueued-time": new Date(d.enqueuedAt),
          "x-opt-deadletter-source": queue
        }
        message.delivery_count = d.attempts
        return message
      }))
    }
    const sessionId = body["session-id"] === undefined ? undefined : String(body["session-id"])
    if (operation === "com.microsoft:peek-message") {
      if (sessionId === undefined) return notSupported("peek-message without a session id")
      const messages = store.peek(entity, sessionId, longValue(body["from-sequence-number"]), Number(body["message-count"] ?? 1), now)
      return peekReply(messages.map((m) => {
        const message = decode(Buffer.from(m.message.body))
        message.message_annotations = {
          ...message.message_annotations,
          "x-opt-sequence-number": rhea.types.wrap_long(m.sequenceNumber),
          "x-opt-enqueued-time": new Date(m.enqueuedAt)
        }
        message.delivery_count = Math.max(0, m.attempts - 1)
        return message
      }))
    }
    const h = sessionId === undefined ? undefined : heldSession(entity, sessionId)
    const lost: Reply = { status: 410, condition: condition.sessionLockLost, description: `the lock of session ${sessionId} is not held` }
    switch (operation) {
      case "com.microsoft:renew-session-lock": {
        if (h === undefined) return lost
        const until = store.renew(entity, h.grant.sessionId, h.grant.lockToken, now)
        if (until === lockLost) return lost
        watchLock(h, until)
        return { status: 200, body: { expiration: new Date(until) } }
      }
      case "com.microsoft:get-session-state": {
        if (h === undefined) return lost
        const state = store.getState(entity, h.grant.sessionId, h.grant.lockToken, now)
        if (state === lockLost) return lost
        return { status: 200, body: state === undefined ? {} : { "session-state": Buffer.from(state) } }
      }
      case "com.microsoft:set-session-state": {
        if (h === undefined) return lost
        const raw = body["session-state"]
        const state = raw === undefined || raw === null ? undefined : new Uint8Array(raw as Buffer)
        return store.setState(entity, h.grant.sessionId, h.grant.lockToken, state, now) === lockLost ? lost : { status: 200 }
      }
      default:
        return notSupported(operation)
    }
  }

  const notSupported = (what: string): Reply => ({ status: 501, condition: condition.notImplemented, description: `${what} is not supported by the test server` })

  const peekReply = (messages: ReadonlyArray<AmqpMessage>): Reply =>
    messages.length === 0
      ? { status: 204, description: "No messages" }
      : { status: 200, body: { messages: messages.map((m) => ({ message: encode(m) })) } }

  // --- listening ----------------------------------------------------------------------------------

  const amqp: NetServer = container.listen({ port: 0, host: "127.0.0.1" })
  amqp.on("connection", (socket: Socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    if (amqp.listening) resolve()
    amqp.once("listening", () => resolve())
    amqp.once("error", reject)
  })
  const port = (amqp.address() as { port: number }).port

  const http: HttpServer = createServer((req, res) => atom(req, res))
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", () => resolve()))
  const httpPort = (http.address() as { port: number }).port

  /** The administration client's GET <queue>?api-version=...: the queue's runtime properties. */
  const atom = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", `http://127.0.0.1:${httpPort}`)
    const queue = decodeURIComponent(url.pathname.slice(1))
    if (req.method !== "GET" || queue === "" || queue.includes("/")) {
      res.writeHead(404, { "content-type": "application/xml" })
      return res.end("<Error><Code>404</Code><Detail>not supported by the test server</Detail></Error>")
    }
    const depth = store.depth(queue, Date.now())
    const now = new Date().toISOString()
    res.writeHead(200, { "content-type": "application/atom+xml;type=entry;charset=utf-8" })
    res.end(
      `<entry xmlns="http://www.w3.org/2005/Atom"><id>https://127.0.0.1/${encodeURIComponent(queue)}?api-version=2021-05</id>` +
        `<title type="text">${escapeXml(queue)}</title><published>${now}</published><updated>${now}</updated>` +
        `<content type="application/xml"><QueueDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">` +
        `<LockDuration>PT${Math.round(lockDurationMs / 1000)}S</LockDuration><RequiresSession>true</RequiresSession>` +
        `<MaxDeliveryCount>${store.options.maxDeliveryCount}</MaxDeliveryCount>` +
        `<SizeInBytes>0</SizeInBytes><MessageCount>${depth.active + depth.deadLettered}</MessageCount>` +
        `<CreatedAt>${now}</CreatedAt><UpdatedAt>${now}</UpdatedAt><AccessedAt>${now}</AccessedAt>` +
        `<CountDetails xmlns:d2p1="http://schemas.microsoft.com/netservices/2011/06/servicebus">` +
        `<d2p1:ActiveMessageCount>${depth.active}</d2p1:ActiveMessageCount>` +
        `<d2p1:DeadLetterMessageCount>${depth.deadLettered}</d2p1:DeadLetterMessageCount>` +
        `<d2p1:ScheduledMessageCount>0</d2p1:ScheduledMessageCount><d2p1:TransferMessageCount>0</d2p1:TransferMessageCount>` +
        `<d2p1:TransferDeadLetterMessageCount>0</d2p1:TransferDeadLetterMessageCount></CountDetails>` +
        `</QueueDescription></content></entry>`
    )
  }

  return {
    connectionString: `Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=test;SharedAccessKey=test;UseDevelopmentEmulator=true`,
    port,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    expireSessionLock: (queue, sessionId) => {
      const h = heldSession(queue, sessionId)
      const expired = store.expire(queue, sessionId)
      if (h !== undefined) loseLock(h)
      return expired
    },
    dropConnections: () => {
      for (const socket of sockets) socket.destroy()
    },
    pendingAccepts: (queue) => pending.filter((p) => p.queue === queue).length,
    lockedSessions: (queue) => [...held].filter((h) => h.queue === queue).map((h) => h.grant.sessionId),
    sessionMessages: (queue, sessionId) => store.peek(queue, sessionId, 0, Number.MAX_SAFE_INTEGER, Date.now()).length,
    depth: (queue) => store.depth(queue, Date.now()),
    close: async () => {
      for (const h of [...held]) forget(h)
      for (const p of [...pending]) dropPending(p)
      for (const socket of sockets) socket.destroy()
      await Promise.all([
        new Promise<void>((resolve) => amqp.close(() => resolve())),
        new Promise<void>((resolve) => http.close(() => resolve()))
      ])
    }
  }
}

/** rhea may hand a filter value over wrapped in a described type. */
const unwrap = (value: unknown): unknown =>
  typeof value === "object" && value !== null && "value" in value ? (value as { value: unknown }).value : value

/** A long from a request body: a number, or 8 big-endian bytes. */
const longValue = (value: unknown): number => {
  const v = unwrap(value)
  if (Buffer.isBuffer(v)) return Number(v.readBigInt64BE())
  return typeof v === "number" ? v : 0
}

const escapeXml = (text: string) => text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")

/** The attach answer that says no session was locked: a null source. */
const noSession = (link: Sender) => {
  frames(link).local.attach["source"] = null
}

/** rhea opens a link on the peer's attach; this takes that back so the answer can wait. */
const holdAttach = (link: Sender) => {
  const state = (link as unknown as { state: { local_open: boolean; open_requests: number } }).state
  state.local_open = false
  state.open_requests = Math.max(0, state.open_requests - 1)
}


/**
 * An administration client whose requests go to the test server: the SDK builds https URLs on
 * the namespace's host, and only a pipeline policy can send them elsewhere.
 */
export const testServerAdministrationClient = (target: Pick<ServiceBusTestServer, "connectionString" | "httpUrl">) => {
  const admin = new ServiceBusAdministrationClient(target.connectionString)
  admin.pipeline.addPolicy({
    name: "serviceBusTestServer",
    sendRequest: (request, next) => {
      const url = new URL(request.url)
      request.url = `${target.httpUrl}${url.pathname}${url.search}`
      request.allowInsecureConnection = true
      return next(request)
    }
  })
  return admin
}
