import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import pg from 'pg'
import { databaseTargets } from '../testing/test-databases.ts'
import { openDatabase } from './index.ts'

const [, postgres] = await databaseTargets()
const PG_URL = process.env['APPTUNNEL_TEST_PG'] || 'postgres://postgres@127.0.0.1:5432/test'
const OPENS = 15
const CHURNERS = 2

describe('PostgreSQL schemas of other instances', { skip: postgres!.skip }, () => {
  test(`an instance starts while other schemas of the same database are created and dropped (${OPENS} starts)`, async () => {
    // Other instances (or test files) sharing the database come and go: each schema here gets
    // tables and is dropped again, as a test's schema is at its end.
    let stop = false
    const churn = async (): Promise<number> => {
      const client = new pg.Client({ connectionString: PG_URL })
      await client.connect()
      let rounds = 0
      try {
        while (!stop) {
          const schema = `t_churn_${randomBytes(6).toString('hex')}`
          await client.query(`create schema "${schema}"; create table "${schema}".a (id integer generated always as identity primary key, x text); create table "${schema}".b (id text)`)
          await client.query(`drop schema "${schema}" cascade`)
          rounds++
        }
      } finally {
        await client.end()
      }
      return rounds
    }
    const churners = Array.from({ length: CHURNERS }, churn)
    const schemas: string[] = []
    const failures: string[] = []
    try {
      for (let i = 0; i < OPENS; i++) {
        const schema = `t_open_${randomBytes(6).toString('hex')}`
        schemas.push(schema)
        try {
          await (await openDatabase(PG_URL, { schema })).close()
        } catch (err) {
          failures.push((err as Error).message)
        }
      }
    } finally {
      stop = true
      const rounds = await Promise.all(churners)
      const client = new pg.Client({ connectionString: PG_URL })
      await client.connect()
      for (const schema of schemas) await client.query(`drop schema if exists "${schema}" cascade`)
      await client.end()
      assert.ok(rounds.every((n) => n > 0), 'the other schemas came and went meanwhile')
    }
    assert.deepEqual(failures, [])
  })
})
