/**
 * Databases of their own on the test PostgreSQL server, so program tests never share tables:
 * `create` makes one and gives its URL; `dropAll` drops every one made (call it after the tests).
 */
import postgres from "postgres"
import { freshName, postgresUrl } from "./servers.ts"

export const freshDatabases = () => {
  const admin = postgres(postgresUrl(), { max: 1, onnotice: () => {} })
  const made: Array<string> = []
  return {
    create: async (prefix: string): Promise<string> => {
      const name = freshName(prefix)
      await admin.unsafe(`create database ${name}`)
      made.push(name)
      const url = new URL(postgresUrl())
      url.pathname = `/${name}`
      return url.toString()
    },
    dropAll: async () => {
      for (const name of made.splice(0)) await admin.unsafe(`drop database if exists ${name} with (force)`)
      await admin.end()
    }
  }
}
