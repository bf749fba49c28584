/**
 * The request and reply bodies of the sales query (SPEC §5), and the error codes:
 *
 *   request  {"region": string, "category"?: string, "from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}
 *   reply    {"ok": true, "result": {"sales", "revenue", "averageTicket", "topProducts": [{"product", "revenue"}]}}
 *            {"ok": false, "error": {"code", "message"}}
 *
 * `bad_request`: not UTF-8, not JSON, too large, a missing or mistyped field, a date that is not
 * a calendar day; `invalid_range`: `from` after `to`; `unknown_region`: no such region;
 * `internal`: the query itself failed; `unavailable`: the balancer has no healthy worker to send
 * it to. Unknown fields are ignored.
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"

export type ErrorCode = "bad_request" | "unknown_region" | "invalid_range" | "internal" | "unavailable"

export interface SalesError {
  readonly code: ErrorCode
  readonly message: string
}

/** Larger bodies are refused before parsing: a request is a few dozen bytes. */
export const maxRequestBytes = 16 * 1024

const isCalendarDate = (text: string) => {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) return false
  const parsed = Date.parse(`${text}T00:00:00Z`)
  return Number.isFinite(parsed) && new Date(parsed).toISOString().startsWith(text)
}

const CalendarDate = Schema.String.check(Schema.makeFilter<string>(isCalendarDate, { expected: "a date YYYY-MM-DD" }))
const Name = Schema.String.check(Schema.isNonEmpty(), Schema.isMaxLength(200))

export const SalesRequest = Schema.Struct({
  region: Name,
  category: Schema.optionalKey(Name),
  from: CalendarDate,
  to: CalendarDate
})

export type SalesRequest = typeof SalesRequest.Type

export interface TopProduct {
  readonly product: string
  readonly revenue: number
}

export interface SalesResult {
  readonly sales: number
  readonly revenue: number
  readonly averageTicket: number
  readonly topProducts: ReadonlyArray<TopProduct>
}

export type SalesReply =
  | { readonly ok: true; readonly result: SalesResult }
  | { readonly ok: false; readonly error: SalesError }

const decoder = new TextDecoder("utf-8", { fatal: true })
const decodeRequest = Schema.decodeUnknownResult(SalesRequest)
const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

const describeIssue = (issue: SchemaIssue.Issue) =>
  formatter(issue).issues.map((leaf) => {
    const path = (leaf.path ?? []).map((key) => String(typeof key === "object" ? key.key : key)).join(".")
    return path === "" ? leaf.message : `${path}: ${leaf.message}`
  }).join("; ")

const isName = (value: unknown): value is string => typeof value === "string" && value.length > 0 && value.length <= 200
const isDate = (value: unknown): value is string => typeof value === "string" && isCalendarDate(value)

/**
 * The request when every field is right, as `SalesRequest` would decode it (unknown fields
 * left out); undefined otherwise. A worker decodes every request: the Schema, run on each,
 * cost as much as a fifth of the query, and it is only needed to describe what is wrong.
 */
const wellFormed = (json: unknown): SalesRequest | undefined => {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return undefined
  const { region, category, from, to } = json as Record<string, unknown>
  if (!isName(region) || !isDate(from) || !isDate(to)) return undefined
  if (category === undefined && !Object.hasOwn(json, "category")) return { region, from, to }
  return isName(category) ? { region, category, from, to } : undefined
}

/** The request in a message body, or the error to reply with. */
export const parseRequest = (body: Uint8Array): Result.Result<SalesRequest, SalesError> => {
  const bad = (message: string) => Result.fail<SalesError>({ code: "bad_request", message })
  if (body.length > maxRequestBytes) return bad(`request body of ${body.length} bytes exceeds ${maxRequestBytes}`)
  let text: string
  try {
    text = decoder.decode(body)
  } catch {
    return bad("request body is not UTF-8")
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return bad("request body is not JSON")
  }
  let request = wellFormed(json)
  if (request === undefined) {
    // Something is wrong with it: the Schema says what, in the reply's words.
    const decoded = decodeRequest(json, { errors: "all" })
    if (Result.isFailure(decoded)) return bad(describeIssue(decoded.failure.issue))
    request = decoded.success
  }
  if (request.from > request.to) {
    return Result.fail({ code: "invalid_range", message: `from ${request.from} is after to ${request.to}` })
  }
  return Result.succeed(request)
}

export const okReply = (result: SalesResult): SalesReply => ({ ok: true, result })
export const errorReply = (error: SalesError): SalesReply => ({ ok: false, error })

export const encodeReply = (reply: SalesReply): string => JSON.stringify(reply)
