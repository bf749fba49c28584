/**
 * programs/outbox-admin.ts as a process against a fresh PostgreSQL database: it migrates, lists
 * failed events (table and JSON), refuses to requeue what is not failed (exit 1), requeues what
 * is, purges in batches keeping each aggregate's sequence, expires idempotency keys, and stops
 * with exit 2 on a usage error or a bad retention variable.
 */
import { afterAll, describe, expect, test } from "bun:test"
import postgres from "postgres"
import { startProgram } from "../support/program.ts"
import { freshDatabases } from "../support/databases.ts"
import { postgresUrl, probePostgres, requireServer } from "../support/servers.ts"

const url = postgresUrl()

const admin = async (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const program = startProgram("outbox-admin.ts", env, args)
  const code = await program.exited
  return { code, stdout: program.stdout(), stderr: program.stderr() }
}

describe("programs/outbox-admin.ts without a database", () => {
  test("--help and no arguments print the commands and exit 0; usage errors exit 2 saying what is wrong", async () => {
    const help = await admin(["--help"])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain("Usage: outbox-admin <command> [options]")
    expect(help.stdout).toContain("requeue <event-id> | --aggregate ID | --all-failed")
    expect((await admin([])).stdout).toContain("Usage: outbox-admin")

    const unknown = await admin(["bogus"])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain(`outbox-admin: unknown command "bogus"`)
    const badSize = await admin(["purge", "--batch-size", "0"])
    expect(badSize.code).toBe(2)
    expect(badSize.stderr).toContain(`--batch-size: expected an integer greater than 0, got "0"`)
    const twoTargets = await admin(["requeue", "--all-failed", "--aggregate", "a"])
    expect(twoTargets.code).toBe(2)
    expect(twoTargets.stderr).toContain("name exactly one of")
  }, 60_000)
})

if (await requireServer("PostgreSQL", probePostgres(url))) {
  const databases = freshDatabases()
  afterAll(() => databases.dropAll())

  describe("programs/outbox-admin.ts on PostgreSQL", () => {
    test("lists, refuses and performs a requeue, purges in batches and expires keys, with the exit codes a script can rely on", async () => {
      const dbUrl = await databases.create("admin")
      const env = { DATABASE_URL: dbUrl }
      // The first run migrates an empty database.
      const empty = await admin(["failed", "--json"], env)
      expect(empty.code).toBe(0)
      expect(JSON.parse(empty.stdout)).toEqual({ total: 0, events: [] })

      const sql = postgres(dbUrl, { max: 1, onnotice: () => {} })
      try {
        const insert = async (aggregate: string, seq: number, status: string, publishedDaysAgo: number | null = null) => {
          const [row] = await sql.unsafe(
            `insert into outbox_events (aggregate_type, aggregate_id, aggregate_seq, event_type, payload, status, published_at)
             values ('order', $1, $2, 'OrderCreated', '{}'::jsonb, $3, now() - make_interval(days => $4::int4)) returning id::text as id`,
            [aggregate, seq, status, publishedDaysAgo]
          )
          return row!.id as string
        }
        const a1 = await insert("a", 1, "failed")
        await sql`update outbox_events set attempts = 4, last_error = 'producer.send failed: too large' where id = ${a1}::uuid`
        const a2 = await insert("a", 2, "pending")
        const b1 = await insert("b", 1, "published", 8)
        await insert("b", 2, "published", 9)
        const c1 = await insert("c", 1, "published", 1)
        await sql`insert into idempotency_keys (key, request_hash, response_status, response_body, created_at)
                  values ('old', 'h', 201, '{}', now() - interval '25 hours'), ('new', 'h', 201, '{}', now())`

        const listed = await admin(["failed", "--json"], env)
        expect(listed.code).toBe(0)
        const listing = JSON.parse(listed.stdout) as { total: number; events: Array<Record<string, unknown>> }
        expect(listing.total).toBe(1)
        expect(listing.events[0]).toMatchObject({ id: a1, aggregateId: "a", aggregateSeq: 1, attempts: 4, heldBack: 1, lastError: "producer.send failed: too large" })
        const table = await admin(["failed"], env)
        expect(table.stdout).toMatch(/^ID +AGGREGATE +SEQ +TYPE +ATTEMPTS +HELD BACK +CREATED +LAST ERROR$/m)
        expect(table.stdout).toContain(`${a1}  order/a`)
        expect(table.stdout).toContain("1 failed")

        const notFailed = await admin(["requeue", b1], env)
        expect(notFailed.code).toBe(1)
        expect(notFailed.stderr).toContain(`outbox event ${b1} is published, not failed`)
        const missing = crypto.randomUUID()
        const notFound = await admin(["requeue", missing], env)
        expect(notFound.code).toBe(1)
        expect(notFound.stderr).toContain(`no outbox event has id ${missing}`)
        expect((await sql`select status from outbox_events where id = ${b1}::uuid`)[0]!.status).toBe("published")

        const requeued = await admin(["requeue", a1, "--json"], env)
        expect(requeued.code).toBe(0)
        expect(JSON.parse(requeued.stdout)).toEqual({ requeued: [{ id: a1, aggregateType: "order", aggregateId: "a", aggregateSeq: 1 }] })
        const [row] = await sql`select status, attempts, last_error from outbox_events where id = ${a1}::uuid`
        expect(row).toEqual({ status: "pending", attempts: 0, last_error: "producer.send failed: too large" })

        const purged = await admin(["purge", "--retention", "7d", "--batch-size", "1", "--json"], env)
        expect(purged.code).toBe(0)
        expect(JSON.parse(purged.stdout)).toMatchObject({ deleted: 2, batches: 3 })
        expect(purged.stderr).toContain("deleted published outbox events")
        const left = await sql`select id::text as id from outbox_events order by position`
        expect(left.map((r) => r.id)).toEqual([a1, a2, c1])
        expect([...await sql`select aggregate_id, last_seq::int4 as last_seq from outbox_aggregate_seqs`]).toEqual([{ aggregate_id: "b", last_seq: 2 }])
        const humanPurge = await admin(["purge"], env)
        expect(humanPurge.stdout).toMatch(/^deleted 0 published outbox events older than 7d \(before .+\) in 1 batch$/m)

        const expired = await admin(["expire-keys", "--json"], env)
        expect(expired.code).toBe(0)
        expect(JSON.parse(expired.stdout)).toMatchObject({ deleted: 1, batches: 1 })
        expect((await sql`select key from idempotency_keys`).map((r) => r.key)).toEqual(["new"])

        const badEnv = await admin(["purge"], { ...env, OUTBOX_RETENTION: "a week" })
        expect(badEnv.code).toBe(2)
        expect(badEnv.stderr).toContain("OUTBOX_RETENTION")
      } finally {
        await sql.end()
      }
    }, 180_000)
  })
}
