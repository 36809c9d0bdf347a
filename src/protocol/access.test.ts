import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AddressMatcher, encodeProductCredential, formatCidr, hashProductSecret, parseCidr, parseProductCredential } from './index.ts'

test('parseCidr: IPv4 and IPv6 blocks and bare addresses; anything else is refused naming the input', () => {
  assert.deepEqual(parseCidr(' 10.0.0.0/8 '), { network: '10.0.0.0', prefix: 8, family: 'ipv4' })
  assert.deepEqual(parseCidr('2001:DB8::/32'), { network: '2001:db8::', prefix: 32, family: 'ipv6' })
  assert.equal(formatCidr(parseCidr('192.0.2.7')), '192.0.2.7/32')
  assert.equal(formatCidr(parseCidr('::1')), '::1/128')
  assert.equal(formatCidr(parseCidr('0.0.0.0/0')), '0.0.0.0/0')
  for (const [bad, why] of [
    ['10.0.0.0/33', /prefix length must be 0-32/],
    ['::/129', /prefix length must be 0-128/],
    ['10.0.0.0/', /prefix length/],
    ['10.0.0.0/8/8', /prefix length/],
    ['10.0.0/8', /not an IPv4 or IPv6/],
    ['example.com', /not an IPv4 or IPv6/],
    ['', /not an IPv4 or IPv6/],
  ] as const) {
    assert.throws(() => parseCidr(bad), (err: Error & { code?: string }) => err.code === 'TUN_ERR_API_BAD_REQUEST' && why.test(err.message) && err.message.includes(`"${bad}"`))
  }
})

test('AddressMatcher: block membership, IPv4-mapped IPv6 sources checked as IPv4, garbage never matches', () => {
  const m = new AddressMatcher([parseCidr('10.0.0.0/8'), parseCidr('2001:db8::/32'), parseCidr('192.0.2.7')])
  assert.equal(m.matches('10.255.1.2'), true)
  assert.equal(m.matches('11.0.0.1'), false)
  assert.equal(m.matches('::ffff:10.1.2.3'), true)
  assert.equal(m.matches('::ffff:11.1.2.3'), false)
  assert.equal(m.matches('2001:db8:1::5'), true)
  assert.equal(m.matches('2001:db9::5'), false)
  assert.equal(m.matches('192.0.2.7'), true)
  assert.equal(m.matches('192.0.2.8'), false)
  assert.equal(m.matches('unknown'), false)
  assert.equal(new AddressMatcher([]).matches('10.0.0.1'), false)
})

test('product credentials round-trip; malformed ones parse to undefined; the hash is of the secret only', () => {
  const secret = Buffer.alloc(32, 9)
  const text = encodeProductCredential({ productId: 'abcdef012345', secret })
  assert.match(text, /^atp1_abcdef012345_[A-Za-z0-9_-]{43}$/)
  assert.deepEqual(parseProductCredential(` ${text} `), { productId: 'abcdef012345', secret })
  for (const bad of ['', 'atp1_', text.slice(0, -1), text + 'A', text.replace('atp1_', 'atp2_'), text.replace('abcdef012345', 'ABCDEF012345'), `Bearer ${text}`]) {
    assert.equal(parseProductCredential(bad), undefined, bad)
  }
  assert.equal(hashProductSecret(secret), hashProductSecret(Buffer.alloc(32, 9)))
  assert.notEqual(hashProductSecret(secret), hashProductSecret(Buffer.alloc(32, 8)))
  assert.throws(() => encodeProductCredential({ productId: 'short', secret }), { code: 'TUN_ERR_INTERNAL' })
})
