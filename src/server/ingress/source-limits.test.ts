import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isTunnelError } from '../../errors/index.ts'
import { SourceLimits, sourceKeyOf } from './source-limits.ts'

test('IPv4 sources count per address, IPv6 sources per /64, IPv4-mapped IPv6 as the IPv4 it is', () => {
  assert.equal(sourceKeyOf('10.1.2.3'), '10.1.2.3')
  assert.equal(sourceKeyOf('::ffff:10.1.2.3'), '10.1.2.3')
  assert.equal(sourceKeyOf('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64')
  assert.equal(sourceKeyOf('2001:DB8:1:2::1'), '2001:db8:1:2::/64')
  assert.equal(sourceKeyOf('2001:db8::1'), '2001:db8:0:0::/64')
  assert.equal(sourceKeyOf('2001:0db8:0000:0000:0:0:0:2'), '2001:db8:0:0::/64')
  assert.equal(sourceKeyOf('::1'), '0:0:0:0::/64')
  assert.equal(sourceKeyOf('fe80::1%eth0'), 'fe80:0:0:0::/64')
  assert.equal(sourceKeyOf('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64')
  assert.equal(sourceKeyOf('unknown'), 'unknown')
})

test('a source gets at most the cap per tunnel; the next is refused naming the limit; other tunnels and sources are apart', () => {
  const limits = new SourceLimits(2)
  const a = limits.acquire('t1', '10.0.0.1')
  const b = limits.acquire('t1', '10.0.0.1')
  const refused = (() => {
    try {
      limits.acquire('t1', '10.0.0.1')
    } catch (err) {
      return err
    }
    return undefined
  })()
  assert.ok(isTunnelError(refused))
  assert.equal(refused.code, 'TUN_ERR_INGRESS_SOURCE_LIMIT')
  assert.equal(refused.httpStatus, 429)
  assert.match(refused.message, /10\.0\.0\.1 already holds 2 connections .*maxConnectionsPerSource 2/)
  // Another tunnel, another address: counted apart.
  const c = limits.acquire('t2', '10.0.0.1')
  const d = limits.acquire('t1', '10.0.0.2')
  assert.equal(limits.count('t1', '10.0.0.1'), 2)
  a.release()
  a.release() // a second release of one lease frees nothing more
  assert.equal(limits.count('t1', '10.0.0.1'), 1)
  const e = limits.acquire('t1', '10.0.0.1')
  for (const l of [b, c, d, e]) l.release()
  assert.equal(limits.sources, 0, 'every lease back: nothing is counted any more')
})

test('two addresses of one IPv6 /64 share the cap, and the refusal names the network', () => {
  const limits = new SourceLimits(1)
  const lease = limits.acquire('t', '2001:db8:5:6::1')
  assert.throws(() => limits.acquire('t', '2001:db8:5:6:ffff::2'), /source network 2001:db8:5:6::\/64 already holds 1 connections/)
  const other = limits.acquire('t', '2001:db8:5:7::1')
  lease.release()
  other.release()
  assert.equal(limits.sources, 0)
})

test('a cap of 0 counts nothing and refuses nobody', () => {
  const limits = new SourceLimits(0)
  for (let i = 0; i < 1000; i++) limits.acquire('t', '10.0.0.1')
  assert.equal(limits.sources, 0)
})
