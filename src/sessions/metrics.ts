/**
 * The session worker's metrics (SPEC §1), declared in one place. Counters export with `_total`.
 *
 * - `session_active_sessions`: sessions this worker holds now.
 * - `session_messages_total{outcome="completed"|"abandoned"|"dead_lettered"}`: settlements.
 * - `session_message_processing_duration_seconds`: handler plus settlement, per message.
 * - `session_messages_out_of_order_total`: messages the example handler saw out of sequence
 *   (must stay 0); `session_messages_duplicate_total`: ones it had already processed (a
 *   redelivery after a settlement was lost), skipped.
 * - `session_lock_renewals_total`, `session_lock_lost_total`.
 * - `session_queue_depth{queue, state="active"|"dead_lettered"}`: what an autoscaler reads
 *   (deploy/kubernetes/session-worker.yaml scales on it with KEDA).
 */
import * as Metric from "effect/Metric"

export type Outcome = "completed" | "abandoned" | "dead_lettered"

export const activeSessions = Metric.gauge("session_active_sessions", { description: "Sessions this worker holds" })

// One series per outcome, made once with its attribute built in: `Metric.withAttributes` at each
// update rebuilds the series key every time, and the worker counts every batch it settles.
const messages = (outcome: Outcome) =>
  Metric.counter("session_messages", { description: "Session messages settled, by outcome", incremental: true, attributes: { outcome } })
const byOutcome: Record<Outcome, Metric.Counter<number>> = {
  completed: messages("completed"),
  abandoned: messages("abandoned"),
  dead_lettered: messages("dead_lettered")
}
export const messagesBy = (outcome: Outcome) => byOutcome[outcome]

export const processingSeconds = Metric.histogram("session_message_processing_duration_seconds", {
  description: "Handling and settling one session message",
  boundaries: Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 16 })
})

export const outOfOrder = Metric.counter("session_messages_out_of_order", {
  description: "Messages that arrived out of sequence within their session (must stay 0)",
  incremental: true
})

export const duplicates = Metric.counter("session_messages_duplicate", {
  description: "Messages redelivered after they had been processed, skipped",
  incremental: true
})

export const lockRenewals = Metric.counter("session_lock_renewals", { description: "Session locks renewed", incremental: true })

export const locksLost = Metric.counter("session_lock_lost", { description: "Session locks lost while held", incremental: true })

const depth = Metric.gauge("session_queue_depth", { description: "Messages in the session queue, by state" })
/** Tag once per queue and keep it (the worker does): each call makes a new series handle. */
export const queueDepth = (queue: string, state: "active" | "dead_lettered") => Metric.withAttributes(depth, { queue, state })
