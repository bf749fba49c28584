/**
 * text[] values in PostgreSQL's array literal form, both ways.
 *
 * postgres.js's own array parser reads an unquoted NULL element as the string "NULL" (an element
 * that really is the text NULL comes quoted, `"NULL"`), so text[] gets this parser instead and
 * reads like PGlite's: `{a,"b,c",NULL}` is `["a", "b,c", null]`.
 */

export type TextArray = Array<string | null | TextArray>

export const parseTextArray = (literal: string): TextArray => {
  // A literal with other lower bounds than 1 starts with its dimensions: `[0:1]={a,b}`.
  let i = literal.startsWith("[") ? literal.indexOf("=") + 1 : 0
  const list = (): TextArray => {
    const out: TextArray = []
    i++ // {
    if (literal[i] === "}") {
      i++
      return out
    }
    for (;;) {
      if (literal[i] === "{") {
        out.push(list())
      } else if (literal[i] === "\"") {
        let text = ""
        let from = ++i
        while (literal[i] !== "\"") {
          if (literal[i] === "\\") {
            text += literal.slice(from, i)
            from = ++i
          }
          i++
        }
        out.push(text + literal.slice(from, i++))
      } else {
        const from = i
        while (literal[i] !== "," && literal[i] !== "}") i++
        const word = literal.slice(from, i)
        out.push(word === "NULL" ? null : word)
      }
      if (literal[i++] === "}") return out
    }
  }
  return list()
}

export const serializeTextArray = (values: ReadonlyArray<unknown>): string =>
  `{${
    values.map((value) =>
      value === null || value === undefined
        ? "NULL"
        : Array.isArray(value)
        ? serializeTextArray(value)
        : `"${String(value).replace(/[\\"]/g, "\\$&")}"`
    ).join(",")
  }}`
