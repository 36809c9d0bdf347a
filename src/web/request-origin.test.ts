import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import { test } from 'node:test'
import { crossOriginProblem, csrfTokenMatches, isStateChanging } from './request-origin.ts'

function req(headers: Record<string, string>): IncomingMessage {
  return { headers } as unknown as IncomingMessage
}

test('a request from the console itself passes', () => {
  assert.equal(crossOriginProblem(req({ host: '127.0.0.1:8443', origin: 'https://127.0.0.1:8443', 'sec-fetch-site': 'same-origin' })), undefined)
  assert.equal(crossOriginProblem(req({ host: 'console.example:443', origin: 'https://console.example:443' })), undefined, 'older browsers without Sec-Fetch-Site')
})

test('other sites, other ports of the same host, plain http and a missing Origin are refused', () => {
  const host = '127.0.0.1:8443'
  assert.match(crossOriginProblem(req({ host, origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' })) ?? '', /another site/)
  assert.match(crossOriginProblem(req({ host, origin: 'https://127.0.0.1:9999', 'sec-fetch-site': 'same-site' })) ?? '', /same-site/)
  assert.match(crossOriginProblem(req({ host, origin: 'https://127.0.0.1:9999' })) ?? '', /another origin/)
  assert.match(crossOriginProblem(req({ host, origin: 'http://127.0.0.1:8443' })) ?? '', /another origin/)
  assert.match(crossOriginProblem(req({ host })) ?? '', /no Origin/)
  assert.match(crossOriginProblem(req({ host, origin: 'null' })) ?? '', /another origin/)
})

test('the CSRF token must be echoed exactly', () => {
  assert.equal(csrfTokenMatches(req({ 'x-csrf-token': 'abc123' }), 'abc123'), true)
  assert.equal(csrfTokenMatches(req({ 'x-csrf-token': 'abc124' }), 'abc123'), false)
  assert.equal(csrfTokenMatches(req({ 'x-csrf-token': 'abc12' }), 'abc123'), false)
  assert.equal(csrfTokenMatches(req({}), 'abc123'), false)
})

test('only GET, HEAD and OPTIONS are safe', () => {
  assert.deepEqual(['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE'].map(isStateChanging), [false, false, false, true, true, true, true])
})
