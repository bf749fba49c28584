/**
 * Polls `check` until it holds: a condition in another process (a broker's queue, a program's
 * metrics, a database), which has no event to await. Throws naming `what` after `timeoutMs`.
 */
export const until = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 120_000, everyMs = 100) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(everyMs)
  }
}
