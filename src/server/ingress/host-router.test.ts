import { test } from 'node:test'
import assert from 'node:assert/strict'
import { HostRouter } from './host-router.ts'

const router = new HostRouter('localhost')
const ID = 'tabcdefgh1'

test('<id>.localhost maps to the tunnel id', () => {
  assert.equal(router.tunnelIdFor(`${ID}.localhost`), ID)
})

test('a port is ignored', () => {
  assert.equal(router.tunnelIdFor(`${ID}.localhost:8080`), ID)
  assert.equal(router.tunnelIdFor(`${ID}.localhost:443`), ID)
})

test('upper case is folded', () => {
  assert.equal(router.tunnelIdFor(`${ID.toUpperCase()}.LOCALHOST`), ID)
  assert.equal(router.tunnelIdFor(`TabcDefgh1.LocalHost:80`), ID)
})

test('a trailing dot is accepted', () => {
  assert.equal(router.tunnelIdFor(`${ID}.localhost.`), ID)
  assert.equal(router.tunnelIdFor(`${ID}.localhost.:8080`), ID)
})

test('the domain given to the router is normalized', () => {
  const r = new HostRouter('.Tunnels.Example.COM.')
  assert.equal(r.tunnelIdFor(`${ID}.tunnels.example.com`), ID)
  assert.equal(r.tunnelIdFor(`${ID}.example.com`), undefined)
})

test('wrong domain is undefined', () => {
  assert.equal(router.tunnelIdFor(`${ID}.example.com`), undefined)
  assert.equal(router.tunnelIdFor(`${ID}.notlocalhost`), undefined)
  assert.equal(router.tunnelIdFor(`${ID}localhost`), undefined)
  assert.equal(router.tunnelIdFor('localhost'), undefined)
  assert.equal(router.tunnelIdFor('.localhost'), undefined)
})

test('nested subdomain is undefined', () => {
  assert.equal(router.tunnelIdFor(`www.${ID}.localhost`), undefined)
  assert.equal(router.tunnelIdFor(`${ID}.www.localhost`), undefined)
})

test('IPv6 literal is undefined', () => {
  assert.equal(router.tunnelIdFor('[::1]'), undefined)
  assert.equal(router.tunnelIdFor('[::1]:8080'), undefined)
  assert.equal(router.tunnelIdFor(`[${ID}.localhost]`), undefined)
})

test('invalid tunnel id is undefined', () => {
  for (const label of ['short', '1abcdefgh', 'abc-defgh', 'abc_defgh', 'a'.repeat(64), '']) {
    assert.equal(router.tunnelIdFor(`${label}.localhost`), undefined, label)
  }
  assert.equal(router.tunnelIdFor(undefined), undefined)
  assert.equal(router.tunnelIdFor(''), undefined)
})

test('urlFor omits default ports', () => {
  assert.equal(router.urlFor(ID, { scheme: 'https', port: 443, domain: 'example.com' }), `https://${ID}.example.com/`)
  assert.equal(router.urlFor(ID, { scheme: 'http', port: 80, domain: 'localhost' }), `http://${ID}.localhost/`)
})

test('urlFor keeps non-default ports', () => {
  assert.equal(router.urlFor(ID, { scheme: 'https', port: 8443, domain: 'example.com' }), `https://${ID}.example.com:8443/`)
  assert.equal(router.urlFor(ID, { scheme: 'http', port: 8080, domain: 'localhost' }), `http://${ID}.localhost:8080/`)
  assert.equal(router.urlFor(ID, { scheme: 'http', port: 443, domain: 'localhost' }), `http://${ID}.localhost:443/`)
  assert.equal(router.urlFor(ID, { scheme: 'https', port: 80, domain: 'localhost' }), `https://${ID}.localhost:80/`)
})

test('urlFor output routes back to the same id', () => {
  const url = new URL(router.urlFor(ID, { scheme: 'http', port: 8080, domain: 'localhost' }))
  assert.equal(router.tunnelIdFor(url.host), ID)
})

test('a Host with an empty or non-numeric port names no tunnel', () => {
  assert.equal(router.tunnelIdFor('abcdefgh12345678.localhost:'), undefined)
  assert.equal(router.tunnelIdFor('abcdefgh12345678.localhost:abc'), undefined)
  assert.equal(router.tunnelIdFor('abcdefgh12345678.localhost:8080'), 'abcdefgh12345678')
})
