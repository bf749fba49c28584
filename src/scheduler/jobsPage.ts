/**
 * The jobs page (`GET /` on the ops server): every job with its schedule, next run and pause
 * flag, and its latest runs with their outcomes. Rendered on the server as one HTML string (no
 * build step, no script needed); it reloads itself every few seconds with a meta refresh.
 *
 * Everything that comes from a job or the history (names, schedules, error messages, instance
 * ids) is escaped: an error message is free text.
 */
import type { Run } from "../capabilities/SchedulerStore.ts"
import type { JobStatus } from "./scheduler.ts"

const entities: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" }

export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => entities[c]!)

const time = (date: Date | null) =>
  date === null ? "—" : `<time datetime="${date.toISOString()}">${escapeHtml(date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z"))}</time>`

const seconds = (run: Run) =>
  run.endedAt === null ? "" : `${((run.endedAt.getTime() - run.startedAt.getTime()) / 1000).toFixed(3)} s`

const runRow = (run: Run) =>
  `<tr class="run outcome-${escapeHtml(run.outcome)}" data-trigger="${escapeHtml(run.trigger)}">` +
  `<td>${time(run.scheduledAt)}</td><td>${time(run.startedAt)}</td><td>${seconds(run)}</td>` +
  `<td class="outcome">${escapeHtml(run.outcome)}</td><td class="trigger">${escapeHtml(run.trigger)}</td>` +
  `<td>${run.attempt}</td><td>${escapeHtml(run.instance)}</td><td class="error">${escapeHtml(run.error ?? "")}</td></tr>`

const jobSection = (job: JobStatus) =>
  `<section class="job" data-job="${escapeHtml(job.name)}">
<h2>${escapeHtml(job.name)}${job.paused ? ` <span class="paused">paused</span>` : ""}</h2>
<p><code class="schedule">${escapeHtml(job.schedule)}</code> in ${escapeHtml(job.timeZone)} · next run <span class="next-run">${time(job.nextRun)}</span></p>
${
    job.recentRuns.length === 0
      ? `<p class="no-runs">no runs yet</p>`
      : `<table><thead><tr><th>scheduled</th><th>started</th><th>took</th><th>outcome</th><th>trigger</th><th>attempt</th><th>instance</th><th>error</th></tr></thead>
<tbody>${job.recentRuns.map(runRow).join("\n")}</tbody></table>`
  }
</section>`

export const renderJobsPage = (jobs: ReadonlyArray<JobStatus>, options: { readonly refreshSeconds: number }): string =>
  `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="${Math.max(1, Math.round(options.refreshSeconds))}">
<title>Jobs</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;margin-bottom:1rem}td,th{padding:.15rem .6rem;border-bottom:1px solid #ddd;text-align:left}
.outcome-succeeded .outcome{color:#176f2c}.outcome-failed .outcome,.outcome-timed_out .outcome,.outcome-interrupted .outcome{color:#b00020}
.outcome-skipped .outcome{color:#8a6d00}.outcome-running .outcome{color:#0b57d0}.paused{color:#8a6d00;font-size:.8em}
.error{max-width:40rem;overflow-wrap:anywhere}
</style></head>
<body><h1>Jobs</h1>
${jobs.length === 0 ? "<p>no jobs registered</p>" : jobs.map(jobSection).join("\n")}
</body></html>
`
