// A tunnel's last hour in the cloud console: requests per minute with their errors, bytes each
// way, sessions per node (small inline SVG charts drawn here, nothing fetched), and the last
// connection events. The numbers come from GET /api/v1/tunnels/:id/activity, which the server
// counts from the same calls its metrics get (src/server/tunnels/tunnel-activity.ts).
import { formatDate, h, poll } from './console-kit.js'

const SVG = 'http://www.w3.org/2000/svg'
const WIDTH = 300
const HEIGHT = 80
const REFRESH_MS = 5000

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v))
  for (const c of children) el.append(c)
  return el
}

/** A bar chart of `series` (one value per minute); `parts` optional darker share of each bar. */
function bars(label, series, parts) {
  const max = Math.max(1, ...series)
  const w = WIDTH / series.length
  const chart = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT + 12}`, class: 'chart', role: 'img', 'aria-label': label })
  chart.append(svg('line', { x1: 0, y1: HEIGHT, x2: WIDTH, y2: HEIGHT, class: 'chart-axis' }))
  series.forEach((v, i) => {
    if (v <= 0) return
    const hgt = Math.max(1, (v / max) * HEIGHT)
    chart.append(svg('rect', { x: i * w + 0.5, y: HEIGHT - hgt, width: Math.max(1, w - 1), height: hgt, class: 'chart-bar' }))
    const p = parts ? parts[i] : 0
    if (p > 0) {
      const ph = Math.max(1, (p / max) * HEIGHT)
      chart.append(svg('rect', { x: i * w + 0.5, y: HEIGHT - ph, width: Math.max(1, w - 1), height: ph, class: 'chart-bar-error' }))
    }
  })
  chart.append(svg('text', { x: 0, y: HEIGHT + 11, class: 'chart-label' }, '60 min ago'), svg('text', { x: WIDTH, y: HEIGHT + 11, class: 'chart-label', 'text-anchor': 'end' }, 'now'))
  return chart
}

/** One stepped line per node: its sessions per minute. */
function lines(label, minutes, nodes) {
  const max = Math.max(1, ...minutes.flatMap((m) => nodes.map((n) => m.sessionsByNode[n] ?? 0)))
  const w = WIDTH / minutes.length
  const chart = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT + 12}`, class: 'chart', role: 'img', 'aria-label': label })
  chart.append(svg('line', { x1: 0, y1: HEIGHT, x2: WIDTH, y2: HEIGHT, class: 'chart-axis' }))
  nodes.forEach((node, k) => {
    const points = minutes.flatMap((m, i) => {
      const y = HEIGHT - ((m.sessionsByNode[node] ?? 0) / max) * (HEIGHT - 2)
      return [`${i * w},${y}`, `${(i + 1) * w},${y}`]
    })
    chart.append(svg('polyline', { points: points.join(' '), class: `chart-line chart-line-${k % 4}` }))
  })
  chart.append(svg('text', { x: 0, y: HEIGHT + 11, class: 'chart-label' }, '60 min ago'), svg('text', { x: WIDTH, y: HEIGHT + 11, class: 'chart-label', 'text-anchor': 'end' }, 'now'))
  return chart
}

function bytesText(n) {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`
}

const EVENT_WORDS = { connect: 'Connected', disconnect: 'Disconnected', 'key-rejected': 'Key rejected' }

/** Draws the activity of `tunnelId` into `container` and keeps it current; returns stop(). */
export function activitySection({ api, tunnelId, container }) {
  const charts = h('div', { class: 'chart-grid' })
  const events = h('tbody')
  container.append(
    h('h2', {}, 'Activity in the last hour'),
    h('p', { class: 'help' }, 'As this server counted it: callers’ requests and bytes through the tunnel, and the agent sessions it holds. Updated every few seconds.'),
    charts,
    h('h3', {}, 'Last events'),
    h('table', { id: 'tunnel-events' }, h('caption', { class: 'visually-hidden' }, 'The last 50 connection events of this tunnel, newest first'), h('thead', {}, h('tr', {}, ['When', 'Event', 'Node', 'Detail'].map((c) => h('th', { scope: 'col' }, c)))), events),
  )
  const draw = (a) => {
    const m = a.minutes
    const requests = m.map((x) => x.requests)
    const errors = m.map((x) => x.errors)
    const totalRequests = requests.reduce((s, v) => s + v, 0)
    const totalErrors = errors.reduce((s, v) => s + v, 0)
    const rate = totalRequests === 0 ? '—' : `${((100 * totalErrors) / totalRequests).toFixed(totalErrors === 0 ? 0 : 1)} %`
    const bytes = m.map((x) => x.bytesIn + x.bytesOut)
    const bytesIn = m.reduce((s, x) => s + x.bytesIn, 0)
    const bytesOut = m.reduce((s, x) => s + x.bytesOut, 0)
    const nodes = [...new Set([...m.flatMap((x) => Object.keys(x.sessionsByNode)), ...Object.keys(a.sessionsNow)])].sort()
    const now = a.sessionsNow
    const perMinute = (totalRequests / m.length).toFixed(totalRequests < m.length * 10 ? 1 : 0)
    charts.replaceChildren(
      h('figure', { id: 'activity-requests' }, h('figcaption', {}, 'Requests per minute'), h('p', { class: 'total' }, `${perMinute} / min`), h('p', { class: 'help' }, `${totalRequests} requests; error rate ${rate} (${totalErrors} answered 5xx, in red)`), bars(`Requests per minute over the last hour: ${totalRequests} in all, ${totalErrors} of them errors`, requests, errors)),
      h('figure', { id: 'activity-bytes' }, h('figcaption', {}, 'Bytes'), h('p', { class: 'total' }, bytesText(bytesIn + bytesOut)), h('p', { class: 'help' }, `${bytesText(bytesIn)} from callers, ${bytesText(bytesOut)} to them`), bars(`Bytes per minute over the last hour: ${bytesText(bytesIn)} in, ${bytesText(bytesOut)} out`, bytes)),
      h(
        'figure',
        { id: 'activity-sessions' },
        h('figcaption', {}, 'Sessions per node'),
        h('p', { class: 'total' }, `${Object.values(now).reduce((s, v) => s + v, 0)} now`),
        h('ul', { class: 'legend' }, nodes.length === 0 ? h('li', {}, 'No session in the last hour') : nodes.map((n, k) => h('li', { class: `legend-${k % 4}` }, `${n}: ${now[n] ?? 0} now`))),
        lines(`Sessions per node over the last hour: ${nodes.map((n) => `${n} ${now[n] ?? 0} now`).join(', ') || 'none'}`, m, nodes),
      ),
    )
    events.replaceChildren(
      ...(a.events.length === 0
        ? [h('tr', {}, h('td', { colspan: 4 }, 'No connection events in this server’s memory yet.'))]
        : a.events.map((e) => h('tr', {}, h('td', { 'data-label': 'When' }, h('time', { datetime: e.at }, formatDate(e.at))), h('td', { 'data-label': 'Event' }, EVENT_WORDS[e.kind] ?? e.kind), h('td', { 'data-label': 'Node', class: 'nowrap' }, e.nodeId ?? '—'), h('td', { 'data-label': 'Detail' }, e.detail)))),
    )
  }
  return poll(async () => draw(await api.get(`/api/v1/tunnels/${tunnelId}/activity`)), REFRESH_MS)
}
