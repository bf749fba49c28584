import { describe, expect, test } from "bun:test"
import { parseTextArray, serializeTextArray } from "../../layers/postgres/textArray.ts"

// The simple one-dimensional cases run against the server in test/contract/sql.ts; these are
// the forms a server sends more rarely.
describe("postgres text[] literals", () => {
  test("nested arrays, dimension prefixes and escapes", () => {
    expect(parseTextArray(`{{a,NULL},{"x y","q\\"\\\\"}}`)).toEqual([["a", null], ["x y", `q"\\`]])
    expect(parseTextArray("[0:1]={a,b}")).toEqual(["a", "b"])
    expect(parseTextArray(`{"NULL",NULL,""}`)).toEqual(["NULL", null, ""])
    expect(parseTextArray("{}")).toEqual([])
  })

  test("serialises what it parses back to the same values", () => {
    const values = [["a", null], ["NULL", `q"\\,{}`]]
    expect(parseTextArray(serializeTextArray(values))).toEqual(values)
    expect(serializeTextArray([])).toBe("{}")
  })
})
