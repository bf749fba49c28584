/**
 * One line for whatever an error carries, for the messages of the capabilities' tagged errors
 * and for logs: an `Error`'s message, a string as it is, anything else as JSON.
 */
export const describeCause = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : JSON.stringify(cause)
