// Throughput sanity check, not a test: `node --import tsx bench/protocol/framer-bench.ts`.
import { RequestFramer } from '../../src/protocol/http1/request-framer.ts'
import { ResponseFramer } from '../../src/protocol/http1/response-framer.ts'
import { serializeRequestHead } from '../../src/protocol/http1/serialize-request-head.ts'
import type { RequestHead } from '../../src/protocol/http1/request-head.ts'

const requestHead = Buffer.from(
  'GET /api/v1/projects/42/items?page=2&sort=desc HTTP/1.1\r\n' +
    'Host: app.example.com\r\n' +
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n' +
    'Accept: application/json, text/plain, */*\r\n' +
    'Accept-Language: en-US,en;q=0.5\r\n' +
    'Accept-Encoding: gzip, deflate, br\r\n' +
    'Cookie: session=3f9a1c2e7b\r\n' +
    'Connection: keep-alive\r\n' +
    '\r\n',
  'latin1',
)

const responseHead = Buffer.from(
  'HTTP/1.1 200 OK\r\n' +
    'Date: Tue, 14 May 2024 10:00:00 GMT\r\n' +
    'Content-Type: application/json; charset=utf-8\r\n' +
    'Content-Length: 0\r\n' +
    'Cache-Control: no-cache\r\n' +
    'ETag: "5f2a-18c"\r\n' +
    'Vary: Accept-Encoding\r\n' +
    'Connection: keep-alive\r\n' +
    '\r\n',
  'latin1',
)

function measure(label: string, bytes: number, iterations: number, run: () => void): void {
  for (let i = 0; i < iterations / 10; i++) run()
  const start = process.hrtime.bigint()
  for (let i = 0; i < iterations; i++) run()
  const ns = Number(process.hrtime.bigint() - start) / iterations
  console.log(`${label.padEnd(44)} ${ns.toFixed(0).padStart(6)} ns/op  (${bytes} bytes)`)
}

let heads = 0
let lastHead: RequestHead | undefined
const requests = new RequestFramer({
  onHead(head) {
    heads++
    lastHead = head
  },
  onBody() {},
  onMessageEnd() {},
})
const responses = new ResponseFramer({
  onHead() {
    heads++
  },
  onBody() {},
  onMessageEnd() {},
  onUpgrade() {},
})

const N = 500_000
measure('request head, one chunk', requestHead.length, N, () => requests.push(requestHead))
const half = requestHead.length >> 1
const first = requestHead.subarray(0, half)
const second = requestHead.subarray(half)
measure('request head, two chunks', requestHead.length, N, () => {
  requests.push(first)
  requests.push(second)
})
measure('response head, one chunk', responseHead.length, N, () => {
  responses.expect('GET')
  responses.push(responseHead)
})
const head = lastHead!
measure('serializeRequestHead (same head)', requestHead.length, N, () => serializeRequestHead(head))
console.log(`(${heads} heads parsed)`)
