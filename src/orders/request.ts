/**
 * The body of `POST /orders`, decoded with an Effect Schema, and its failures as field errors.
 *
 * Unknown fields are ignored (the Schema's default). A price has at most two decimals: it is
 * money in cents, and a third decimal would be silently rounded away.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"

// Infinity is left to the finiteness check, so it is reported once.
const hasCents = Schema.makeFilter<number>(
  (price) => !Number.isFinite(price) || Math.abs(price * 100 - Math.round(price * 100)) < 1e-6 && Number.isSafeInteger(Math.round(price * 100)),
  { expected: "a price with at most two decimals" }
)

export const OrderItemRequest = Schema.Struct({
  sku: Schema.String.check(Schema.isNonEmpty()),
  quantity: Schema.Int.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(1_000_000)),
  unitPrice: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), hasCents)
})

export const OrderRequest = Schema.Struct({
  customerId: Schema.String.check(Schema.isNonEmpty()),
  items: Schema.Array(OrderItemRequest).check(Schema.isMinLength(1))
})

export type OrderRequest = typeof OrderRequest.Type

export interface FieldError {
  readonly path: string
  readonly message: string
}

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

/** `["items", 0, "quantity"]` → `items[0].quantity`; the root is `""`. */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (text, key) => typeof key === "number" ? `${text}[${key}]` : text === "" ? String(key) : `${text}.${String(key)}`,
    ""
  )

/** Every failure of the issue tree, one per leaf, with its path. */
export const fieldErrors = (issue: SchemaIssue.Issue): ReadonlyArray<FieldError> =>
  formatter(issue).issues.map((leaf) => ({
    path: formatPath((leaf.path ?? []).map((key) => typeof key === "object" ? key.key : key)),
    message: leaf.message
  }))

const decode = Schema.decodeUnknownEffect(OrderRequest)

export const decodeOrderRequest = (body: unknown): Effect.Effect<OrderRequest, ReadonlyArray<FieldError>> =>
  decode(body, { errors: "all" }).pipe(Effect.mapError((error) => fieldErrors(error.issue)))
