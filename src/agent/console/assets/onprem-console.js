// The on-prem instance console (Administration › Application tunnels): the instance's tunnel with
// its status and troubleshooting hint, the Add security key wizard, the cluster nodes, remove key.
// A link from the cloud console may carry the key in the URL fragment (#key=…): it is read once,
// wiped from the address bar and history, and only ever pre-fills the wizard — adding it still
// takes the admin's click, so a crafted link cannot swap the instance's tunnel.
import { ApiError, alertBox, announce, clearError, confirmDialog, copyButton, createApi, createRouter, createSessionShell, h, poll, render, setHeader, showError, statusBadge, when } from './console-kit.js'

const LIVE_MS = 1000
const api = createApi('/api/v1/session')
let pendingKey = takeKeyFromFragment()

function takeKeyFromFragment() {
  const m = /(?:^#|&)key=([^&]*)/.exec(location.hash)
  if (m === null) return null
  history.replaceState(history.state, '', location.pathname + location.search)
  try {
    return decodeURIComponent(m[1])
  } catch {
    return m[1]
  }
}

const router = createRouter(
  [
    [/^\/$/, () => tunnelsPage()],
    [/^\/login$/, () => router.go('/', { replace: true })],
    [/^\/add-key$/, () => addKeyWizard()],
    [/^\/nodes$/, () => nodesPage()],
  ],
  () => render('Not found', h('h1', {}, 'Page not found'), h('p', {}, h('a', { href: '/', 'data-nav': '' }, 'Go to application tunnels'))),
)

const shell = createSessionShell({
  api,
  router,
  consoleName: 'instance console',
  loginPath: '/login',
  afterSignIn: (next) => (pendingKey !== null ? '/add-key' : next && next !== '/login' ? next : '/'),
  notice: () => (pendingKey !== null ? 'Sign in to add the security key you were sent here with.' : undefined),
})

function header(current) {
  setHeader(
    shell.session,
    [
      { href: '/', label: 'Application tunnels', current: current === 'tunnels' },
      { href: '/nodes', label: 'Cluster nodes', current: current === 'nodes' },
    ],
    () => shell.signOut(),
  )
}

function crumbs() {
  return h('p', { class: 'breadcrumbs' }, 'Administration › Application tunnels')
}

/** The status with its reason and what to do about it (the reference document's troubleshooting). */
function statusPanel(view) {
  const panel = h('div', { id: 'instance-status' }, statusBadge(view.status), h('p', { class: 'reason' }, view.reason), h('p', { class: 'help', id: 'status-hint' }, view.hint))
  if (view.status === 'LIMITED' || view.status === 'CONNECTING') panel.append(h('p', {}, h('a', { href: '/nodes', 'data-nav': '' }, 'Check the cluster nodes')))
  return panel
}

function tunnelsPage() {
  header('tunnels')
  const error = alertBox('tunnels-error')
  const content = h('div')
  const live = h('div', { role: 'status', 'aria-live': 'polite', class: 'visually-hidden' })
  render(
    'Application tunnels · instance console',
    crumbs(),
    h('h1', {}, 'Application tunnels'),
    h('p', { class: 'lead' }, 'Application tunnels connect your cloud products to this on-prem instance through an outgoing connection. Add the security key of a tunnel created in the cloud console; the instance has one tunnel, which many cloud products can use.'),
    error,
    content,
    live,
  )
  let shown = null
  let lastStatus
  const refresh = async () => {
    const view = await api.get('/api/v1/instance/status')
    clearError(error)
    if (lastStatus !== undefined && view.status !== lastStatus) live.textContent = `The tunnel is now ${view.status ?? 'without a key'}: ${view.reason}`
    lastStatus = view.status
    const fingerprint = JSON.stringify([view.status, view.reason, view.tunnel])
    if (fingerprint === shown) return
    shown = fingerprint
    if (view.tunnel === null) {
      content.replaceChildren(
        h('p', { class: 'notice' }, 'No security key has been added to this instance. Create a tunnel in the cloud console, then add its security key here.'),
        h('div', { class: 'actions-row' }, h('a', { class: 'button primary', href: '/add-key', 'data-nav': '' }, 'Add security key')),
      )
      return
    }
    const t = view.tunnel
    const name = t.name ?? `Tunnel ${t.id}`
    const menu = h(
      'details',
      { class: 'menu' },
      h('summary', { 'aria-label': `Actions for ${name}` }, '⋯'),
      h('ul', {}, h('li', {}, h('button', { type: 'button', onclick: () => { menu.open = false; void removeKey(name) } }, 'Remove security key'))),
    )
    content.replaceChildren(
      h('p', { class: 'help' }, 'This instance has its tunnel: remove its key before adding another.'),
      h(
        'table',
        {},
        h('caption', { class: 'visually-hidden' }, 'The tunnel of this instance'),
        h('thead', {}, h('tr', {}, ['Name', 'Connected to', 'Status', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
        h(
          'tbody',
          {},
          h(
            'tr',
            {},
            h('td', { 'data-label': 'Name' }, name),
            h('td', { 'data-label': 'Connected to' }, t.connectedTo ?? '—'),
            h('td', { 'data-label': 'Status' }, statusBadge(view.status)),
            h('td', { 'data-label': 'Actions' }, menu),
          ),
        ),
      ),
      h('h2', {}, 'Status'),
      statusPanel(view),
      h('h2', {}, 'Tunnel details'),
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Application link URL'),
        h('dd', {}, t.applicationLinkUrl ? [h('span', { class: 'secret', id: 'application-link-url' }, t.applicationLinkUrl), ' ', copyButton('Copy URL', () => t.applicationLinkUrl)] : 'shown once a node has connected'),
        h('dt', {}, 'Tunnel ID'),
        h('dd', {}, t.id),
        h('dt', {}, 'Tunnel server'),
        h('dd', {}, t.serverUrl),
        h('dt', {}, 'Key added'),
        h('dd', {}, when(t.addedAt)),
        h('dt', {}, 'Nodes'),
        h('dd', {}, `${view.nodes.filter((n) => n.status === 'CONNECTED').length} of ${view.nodes.length} connected `, h('a', { href: '/nodes', 'data-nav': '' }, 'View cluster nodes')),
      ),
    )
  }
  return poll(() => refresh().catch((err) => {
    if (err instanceof ApiError && err.status === 401) throw err
    showError(error, err)
  }), LIVE_MS)
}

async function removeKey(name) {
  const ok = await confirmDialog({
    title: `Remove the security key of “${name}”?`,
    body: ['Every node of this instance disconnects from the tunnel within seconds, and cloud products can no longer reach the instance through it.', 'The tunnel itself stays in the cloud console; you can add its key again.'],
    confirmLabel: 'Remove security key',
    danger: true,
  })
  if (!ok) return
  try {
    await api.del('/api/v1/instance/key')
    announce('Security key removed')
    router.go('/')
  } catch (err) {
    await confirmDialog({ title: 'The key was not removed', body: [err.message], confirmLabel: 'OK' })
  }
}

function steps(current) {
  return h('ol', { class: 'steps', 'aria-label': 'Steps' }, ['Security key', 'Confirm', 'Connect'].map((s, i) => h('li', { 'aria-current': i + 1 === current ? 'step' : null }, `${i + 1}. ${s}`)))
}

function addKeyWizard() {
  header('tunnels')
  const error = alertBox('key-error')
  const keyField = h('textarea', { id: 'security-key', name: 'key', rows: 4, required: true, spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'security-key-help' })
  if (pendingKey !== null) keyField.value = pendingKey
  pendingKey = null
  const next = h('button', { type: 'submit', class: 'primary' }, 'Next')
  const form = h(
    'form',
    { novalidate: true },
    h('label', { for: 'security-key' }, 'Security key'),
    keyField,
    h('p', { class: 'help', id: 'security-key-help' }, 'Paste the key shown when the tunnel was created in the cloud console. It starts with atk1_.'),
    error,
    h('div', { class: 'actions-row' }, next, h('a', { href: '/', 'data-nav': '' }, 'Cancel')),
  )
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    clearError(error, keyField)
    next.disabled = true
    try {
      const checked = await api.post('/api/v1/instance/key/check', { key: keyField.value })
      confirmStep(keyField.value, checked)
    } catch (err) {
      showError(error, err, keyField)
    } finally {
      next.disabled = false
    }
  })
  render('Add security key · instance console', crumbs(), h('h1', {}, 'Add security key'), steps(1), keyField.value !== '' ? h('p', { class: 'notice' }, 'The key from the cloud console is filled in. Check it, then select Next.') : null, form)
}

function confirmStep(key, checked) {
  const error = alertBox('add-error')
  const add = h('button', { type: 'button', class: 'primary' }, 'Add security key')
  add.addEventListener('click', async () => {
    clearError(error)
    add.disabled = true
    try {
      await api.put('/api/v1/instance/key', { key })
      connectStep(checked)
    } catch (err) {
      showError(error, err)
      add.disabled = false
    }
  })
  render(
    'Confirm · add security key',
    crumbs(),
    h('h1', {}, 'Add security key'),
    steps(2),
    h('p', {}, 'The key is valid. Every node of this instance will connect with it:'),
    h('dl', { class: 'facts' }, h('dt', {}, 'Tunnel ID'), h('dd', {}, checked.tunnelId), h('dt', {}, 'Tunnel server'), h('dd', {}, checked.serverUrl), h('dt', {}, 'Server certificate'), h('dd', {}, checked.certificatePinned ? 'self-signed, pinned by the key' : 'checked against the trusted CAs')),
    error,
    h('div', { class: 'actions-row' }, add, h('a', { href: '/add-key', 'data-nav': '' }, 'Back')),
  )
}

function connectStep(checked) {
  const statusArea = h('div', { role: 'status', 'aria-live': 'polite' })
  const link = h('div')
  render(
    'Connecting · add security key',
    crumbs(),
    h('h1', {}, 'Security key added'),
    steps(3),
    h('p', {}, `The nodes are connecting to tunnel ${checked.tunnelId}. This page updates by itself.`),
    statusArea,
    h('h2', {}, 'Application link URL'),
    link,
    h('div', { class: 'actions-row' }, h('a', { class: 'button', href: '/', 'data-nav': '' }, 'Done: view the tunnel')),
  )
  let shown = null
  const stop = poll(async () => {
    const view = await api.get('/api/v1/instance/status')
    const fingerprint = JSON.stringify([view.status, view.reason, view.tunnel && view.tunnel.applicationLinkUrl])
    if (fingerprint === shown) return
    shown = fingerprint
    statusArea.replaceChildren(statusPanel(view))
    const url = view.tunnel && view.tunnel.applicationLinkUrl
    link.replaceChildren(
      url
        ? h('p', {}, h('span', { class: 'secret', id: 'application-link-url' }, url), ' ', copyButton('Copy URL', () => url), h('span', { class: 'help' }, ' Use it to create the application link in each cloud product.'))
        : h('p', { class: 'help' }, 'The tunnel server tells it when the first node connects.'),
    )
  }, LIVE_MS)
  return stop
}

function nodesPage() {
  header('nodes')
  const error = alertBox('nodes-error')
  const body = h('tbody')
  render(
    'Cluster nodes · instance console',
    h('p', { class: 'breadcrumbs' }, 'Administration › Clustering'),
    h('h1', {}, 'Cluster nodes'),
    h('p', { class: 'lead' }, 'Every agent node of this instance and its connection to the tunnel. A node that is down keeps the instance LIMITED until it is back, or until you remove it here if it is gone for good.'),
    error,
    h('table', {}, h('caption', { class: 'visually-hidden' }, 'Agent nodes of this instance'), h('thead', {}, h('tr', {}, ['Node', 'Address', 'State', 'Status', 'Sessions', 'Last heartbeat', 'Version', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))), body),
  )
  let shown = null
  const refresh = async () => {
    const view = await api.get('/api/v1/instance/status')
    clearError(error)
    const fingerprint = JSON.stringify(view.nodes.map((n) => [n.id, n.status, n.reason, n.online, n.sessions, n.lastHeartbeat]))
    if (fingerprint === shown) return
    shown = fingerprint
    if (view.nodes.length === 0) {
      body.replaceChildren(h('tr', {}, h('td', { colspan: 8 }, 'No agent node has registered yet: start apptunnel agent with this database on each node.')))
      return
    }
    body.replaceChildren(
      ...view.nodes.map((n) =>
        h(
          'tr',
          { 'data-node-id': n.id },
          h('th', { scope: 'row', 'data-label': 'Node' }, n.id),
          h('td', { 'data-label': 'Address' }, n.address),
          h('td', { 'data-label': 'State' }, n.online ? 'Running' : 'Down'),
          h('td', { 'data-label': 'Status' }, statusBadge(n.status), h('p', { class: 'reason' }, n.reason)),
          h('td', { 'data-label': 'Sessions' }, `${n.sessions} of ${n.sessionsWanted}`),
          h('td', { 'data-label': 'Last heartbeat' }, when(n.lastHeartbeat)),
          h('td', { 'data-label': 'Version' }, n.version),
          h('td', { 'data-label': 'Actions' }, n.online ? '—' : h('button', { type: 'button', 'aria-label': `Remove node ${n.id}`, onclick: () => removeNode(n.id) }, 'Remove')),
        ),
      ),
    )
  }
  const removeNode = async (id) => {
    if (!(await confirmDialog({ title: `Remove node ${id}?`, body: ['It no longer counts towards the instance status. If its agent starts again, it registers again.'], confirmLabel: 'Remove node', danger: true }))) return
    try {
      await api.del(`/api/v1/instance/nodes/${encodeURIComponent(id)}`)
      announce(`Node ${id} removed`)
      shown = null
      await refresh()
    } catch (err) {
      showError(error, err)
    }
  }
  return poll(() => refresh().catch((err) => {
    if (err instanceof ApiError && err.status === 401) throw err
    showError(error, err)
  }), LIVE_MS)
}

void shell.start(() => {
  if (pendingKey !== null) router.go('/add-key', { replace: true })
  else router.show()
})
