/**
 * Fresh RabbitMQ names for one balancer and its workers in a program test, registered for
 * cleanup: the request and reply queues, the balancer's id and the heartbeat topic, and the
 * balancer's environment naming them.
 */
import { freshName } from "./servers.ts"

export interface SalesTopology {
  readonly requestQueue: string
  readonly replyQueue: string
  readonly balancerId: string
  readonly heartbeatTopic: string
  /** WORKER_QUEUES, REQUEST_QUEUE, REPLY_QUEUE, BALANCER_ID and HEARTBEAT_TOPIC for sales-balancer. */
  readonly balancerEnv: Record<string, string>
}

export const salesTopology = (
  workerQueues: ReadonlyArray<string>,
  cleanup: Array<{ topic: string; group: string }>
): SalesTopology => {
  const requestQueue = freshName("sales_requests")
  const replyQueue = freshName("sales_replies")
  const balancerId = freshName("balancer")
  const heartbeatTopic = freshName("sales_heartbeats")
  cleanup.push(
    ...workerQueues.map((group) => ({ topic: "", group })),
    { topic: "", group: requestQueue },
    { topic: "", group: replyQueue },
    { topic: heartbeatTopic, group: `${balancerId}.heartbeats` }
  )
  return {
    requestQueue,
    replyQueue,
    balancerId,
    heartbeatTopic,
    balancerEnv: {
      WORKER_QUEUES: workerQueues.join(","),
      REQUEST_QUEUE: requestQueue,
      REPLY_QUEUE: replyQueue,
      BALANCER_ID: balancerId,
      HEARTBEAT_TOPIC: heartbeatTopic
    }
  }
}
