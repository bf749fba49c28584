/**
 * The scheduler's jobs page in a real headless browser: Debian's `chromium` driven by
 * playwright-core (which is told where the browser is and never downloads one), against
 * programs/scheduler.ts as a process. The page lists the jobs with their next run; a manual
 * trigger made through the API shows up in its history when it reloads itself; trigger, pause
 * and resume refuse a request from the page without the token or with a wrong one.
 *
 * `.ci/run` installs chromium when it is missing; without it this test fails saying so.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { existsSync } from "node:fs"
import { type Browser, chromium } from "playwright-core"
import { opsUrl, type RunningProgram, startProgram } from "../support/program.ts"

const CHROMIUM = "/usr/bin/chromium"
const TOKEN = "browser-test-token-0123456789"

let browser: Browser
let program: RunningProgram
let ops: string

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); .ci/run does so`)
  }
  program = startProgram("scheduler.ts", { DATABASE_URL: "", PGLITE_DATA_DIR: "", OPS_TOKEN: TOKEN })
  const [launched] = await Promise.all([
    chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu"] }),
    program.waitFor(/scheduler .* started with 2 jobs/, 60_000)
  ])
  browser = launched
  ops = await opsUrl(program)
}, 90_000)

afterAll(async () => {
  await browser?.close()
  program?.kill("SIGTERM")
  await program?.exited
})

interface JobJson {
  readonly name: string
  readonly nextRun: string
}

describe("the jobs page in chromium", () => {
  test("lists the jobs with their next run, and a manual trigger made through the API appears in its history", async () => {
    const page = await browser.newPage()
    try {
      await page.goto(`${ops}/`)
      expect(await page.title()).toBe("Jobs")
      const names = await page.locator("section.job h2").allTextContents()
      expect(names.map((n) => n.trim())).toEqual(["heartbeat", "flaky"])
      // The next run shown is the one the API gives (the page was rendered at about the same moment).
      const shown = await page.locator(`section[data-job="flaky"] .next-run time`).getAttribute("datetime")
      const api = ((await (await fetch(`${ops}/jobs`)).json()) as { jobs: Array<JobJson> }).jobs
      const flakyNext = api.find((j) => j.name === "flaky")!.nextRun
      expect(shown).not.toBeNull()
      // At most one @every 5s occurrence apart: the job may have fired between the two reads.
      expect(Math.abs(Date.parse(flakyNext) - Date.parse(shown!))).toBeLessThanOrEqual(5000)
      expect(await page.locator(`section[data-job="heartbeat"] code.schedule`).textContent()).toBe("@every 2s")
      expect(await page.locator(`section[data-job="flaky"] tr[data-trigger="manual"]`).count()).toBe(0)

      const triggered = await fetch(`${ops}/jobs/flaky/trigger`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } })
      expect(triggered.status).toBe(202)
      const run = ((await triggered.json()) as { run: { scheduledAt: string } }).run

      // No reload from here: the page refreshes itself.
      const row = page.locator(`section[data-job="flaky"] tr[data-trigger="manual"]`).first()
      await row.waitFor({ timeout: 20_000 })
      expect(await row.locator("time").first().getAttribute("datetime")).toBe(run.scheduledAt)
      expect(["running", "failed", "succeeded"]).toContain((await row.locator("td.outcome").textContent())!)
      // The flaky job's first attempt fails: the page shows the outcome with its error.
      await page.locator(`section[data-job="flaky"] tr.outcome-failed td.error`, { hasText: "the first attempt always fails" }).first()
        .waitFor({ timeout: 20_000 })
    } finally {
      await page.close()
    }
  }, 60_000)

  test("trigger, pause and resume refuse a request from the page without the token or with a wrong one", async () => {
    const page = await browser.newPage()
    try {
      await page.goto(`${ops}/`)
      const statuses = await page.evaluate(async (token) => {
        const out: Array<[string, string, number]> = []
        for (const action of ["trigger", "pause", "resume"]) {
          for (const [label, headers] of [["none", {}], ["wrong", { authorization: "Bearer wrong-wrong-wrong-wrong" }], ["right", { authorization: `Bearer ${token}` }]] as const) {
            const response = await fetch(`/jobs/heartbeat/${action}`, { method: "POST", headers })
            // With the token a trigger may also be 409: a scheduled heartbeat ran at that instant (overlap).
            out.push([action, label, action === "trigger" && response.status === 409 ? 202 : response.status])
          }
        }
        return out
      }, TOKEN)
      expect(statuses).toEqual([
        ["trigger", "none", 401], ["trigger", "wrong", 401], ["trigger", "right", 202],
        ["pause", "none", 401], ["pause", "wrong", 401], ["pause", "right", 200],
        ["resume", "none", 401], ["resume", "wrong", 401], ["resume", "right", 200]
      ])
    } finally {
      await page.close()
    }
  }, 60_000)
})
