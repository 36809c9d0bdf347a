// The on-prem instance console (Administration › Application tunnels): the instance's tunnel with
// its status and troubleshooting hint, the Add security key wizard, the cluster nodes, remove key.
// A link from the cloud console may carry the key in the URL fragment (#key=…): it is read once,
// wiped from the address bar and history, and only ever pre-fills the wizard — adding it still
// takes the admin's click, so a crafted link cannot swap the instance's tunnel.
//
// Live views update in place: each keeps the elements it drew and changes only the text that
// changed, so a refresh never closes a menu, moves focus or resets what the admin is doing.
import { actionsMenu, alertBox, announce, changePasswordForm, clearError, commandBox, confirmDialog, copyButton, createApi, createRouter, createSessionShell, freshness, h, localTimes, poll, render, setHeader, setStatus, setText, showError, statusBadge, when } from './console-kit.js'

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
    [/^\/audit$/, () => auditPage()],
    [/^\/account$/, () => accountPage()],
  ],
  () => {
    header('')
    render('Page not found · instance console', h('h1', {}, 'Page not found'), h('p', {}, 'The instance console has no page at this address.'), h('p', {}, h('a', { href: '/', 'data-nav': '' }, 'Go to application tunnels')))
  },
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
      { href: '/audit', label: 'Audit log', current: current === 'audit' },
      { href: '/account', label: 'Account', current: current === 'account' },
    ],
    () => shell.signOut(),
  )
}

function crumbs() {
  return h('p', { class: 'breadcrumbs' }, 'Administration › Application tunnels')
}

/** The live poll of a view, its freshness line, and errors that are not "cannot reach". */
function live(tick) {
  const fresh = freshness(document.getElementById('main'))
  return { fresh, start: () => poll(tick, LIVE_MS, fresh) }
}

/** The status with its reason and what to do about it; `update(view)` changes it in place. */
function statusPanel() {
  const badge = statusBadge(null)
  const reason = h('p', { class: 'reason live-value' })
  const hint = h('p', { class: 'help', id: 'status-hint' })
  const nodesLink = h('p', { hidden: true }, h('a', { href: '/nodes', 'data-nav': '' }, 'Check the cluster nodes'))
  const el = h('div', { id: 'instance-status' }, badge, reason, hint, nodesLink)
  return {
    el,
    update(view) {
      setStatus(badge, view.status)
      setText(reason, localTimes(view.reason))
      setText(hint, view.hint)
      nodesLink.hidden = !(view.status === 'LIMITED' || view.status === 'CONNECTING' || view.status === 'UNAVAILABLE') || view.nodes.length === 0
    },
  }
}

function tunnelsPage() {
  header('tunnels')
  const content = h('div')
  const liveText = h('div', { role: 'status', 'aria-live': 'polite', class: 'visually-hidden' })
  const { fresh, start } = live(() => refresh())
  render(
    'Application tunnels · instance console',
    crumbs(),
    h('h1', {}, 'Application tunnels'),
    h('p', { class: 'lead' }, 'Application tunnels connect your cloud products to this on-prem instance through an outgoing connection. Add the security key of a tunnel created in the cloud console; the instance has one tunnel, which many cloud products can use.'),
    fresh.el,
    content,
    liveText,
  )
  let shownTunnel // undefined: nothing drawn yet; null: the no-key notice; else the tunnel id drawn
  let parts = null
  let lastStatus
  const refresh = async () => {
    const view = await api.get('/api/v1/instance/status')
    if (lastStatus !== undefined && view.status !== lastStatus) liveText.textContent = `The tunnel is now ${view.status ?? 'without a key'}: ${view.reason}`
    lastStatus = view.status
    const id = view.tunnel === null ? null : view.tunnel.id
    if (id !== shownTunnel) {
      shownTunnel = id
      parts = id === null ? null : tunnelParts(view)
      content.replaceChildren(
        ...(id === null
          ? [h('p', { class: 'notice' }, 'No security key has been added to this instance. Create a tunnel in the cloud console, then add its security key here.'), h('div', { class: 'actions-row' }, h('a', { class: 'button primary', href: '/add-key', 'data-nav': '' }, 'Add security key'))]
          : parts.elements),
      )
    }
    if (parts !== null) parts.update(view)
  }
  return start()
}

/** The tunnel's table row, status panel and details, drawn once per tunnel and updated in place. */
function tunnelParts(first) {
  const nameCell = h('td', { 'data-label': 'Name' })
  const connectedCell = h('td', { 'data-label': 'Connected to' })
  const badge = statusBadge(first.status)
  const panel = statusPanel()
  const menu = actionsMenu(`Actions for ${first.tunnel.name ?? 'the tunnel'}`, [['Remove security key', () => void removeKey(first.tunnel.name ?? `tunnel ${first.tunnel.id}`)]])
  const linkCell = h('dd')
  let shownLink
  const nodesText = h('span', { class: 'live-value' })
  const elements = [
    h('p', { class: 'help' }, 'This instance has its tunnel: remove its key before adding another.'),
    h(
      'table',
      {},
      h('caption', { class: 'visually-hidden' }, 'The tunnel of this instance'),
      h('thead', {}, h('tr', {}, ['Name', 'Connected to', 'Status', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, h('tr', {}, nameCell, connectedCell, h('td', { 'data-label': 'Status' }, badge), h('td', { 'data-label': 'Actions' }, menu))),
    ),
    h('h2', {}, 'Status'),
    panel.el,
    h('h2', {}, 'Tunnel details'),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Application link URL'),
      linkCell,
      h('dt', {}, 'Tunnel ID'),
      h('dd', {}, first.tunnel.id),
      h('dt', {}, 'Tunnel server'),
      h('dd', {}, first.tunnel.serverUrl),
      h('dt', {}, 'Key added'),
      h('dd', {}, when(first.tunnel.addedAt)),
      h('dt', {}, 'Nodes'),
      h('dd', {}, nodesText, ' ', h('a', { href: '/nodes', 'data-nav': '' }, 'View cluster nodes')),
    ),
  ]
  return {
    elements,
    update(view) {
      const t = view.tunnel
      const name = t.name ?? `Tunnel ${t.id}`
      setText(nameCell, name)
      menu.querySelector('summary').setAttribute('aria-label', `Actions for ${name}`)
      setText(connectedCell, t.connectedTo ?? '—')
      setStatus(badge, view.status)
      panel.update(view)
      if (t.applicationLinkUrl !== shownLink) {
        shownLink = t.applicationLinkUrl
        const url = t.applicationLinkUrl
        linkCell.replaceChildren(...(url ? [h('span', { class: 'secret', id: 'application-link-url' }, url), ' ', copyButton('Copy URL', () => url)] : ['shown once a node has connected']))
      }
      const up = view.nodes.filter((n) => n.status === 'CONNECTED').length
      setText(nodesText, view.nodes.length === 0 ? 'no node has registered' : view.nodes.length === 1 ? (up === 1 ? 'the only node is connected' : 'the only node is not connected') : `${up} of ${view.nodes.length} connected`)
    },
  }
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
    void router.go('/')
  } catch (err) {
    await confirmDialog({ title: 'The key was not removed', body: [err.message], confirmLabel: 'OK' })
  }
}

function steps(current) {
  return h('ol', { class: 'steps', 'aria-label': 'Steps' }, ['Security key', 'Confirm', 'Connect'].map((s, i) => h('li', { 'aria-current': i + 1 === current ? 'step' : null }, `${i + 1}. ${s}`)))
}

const KEY_WORDS = {
  TUN_ERR_INSTANCE_HAS_KEY: 'This instance already has the key of another tunnel. Remove that key first (Application tunnels › ⋯ › Remove security key): an instance has one tunnel.',
}

function addKeyWizard() {
  header('tunnels')
  const error = alertBox('key-error')
  const keyField = h('textarea', { id: 'security-key', name: 'key', rows: 4, required: true, spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'security-key-help', 'data-help': 'security-key-help' })
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
      showError(error, err, undefined, KEY_WORDS)
      add.disabled = false
    }
  })
  render(
    'Confirm · add security key',
    crumbs(),
    h('h1', {}, 'Add security key'),
    steps(2),
    // Only the format and checksum were checked here: whether the tunnel exists and accepts the
    // key, only the tunnel server can say, when the nodes connect (the next step shows it).
    h('p', {}, 'The key is well-formed: its format and checksum are right. The tunnel server checks it when the nodes connect with it. Every node of this instance will connect to:'),
    h('dl', { class: 'facts' }, h('dt', {}, 'Tunnel ID'), h('dd', {}, checked.tunnelId), h('dt', {}, 'Tunnel server'), h('dd', {}, checked.serverUrl), h('dt', {}, 'Server certificate'), h('dd', {}, checked.certificatePinned ? 'self-signed, pinned by the key' : 'checked against the trusted CAs')),
    error,
    h('div', { class: 'actions-row' }, add, h('a', { href: '/add-key', 'data-nav': '' }, 'Back')),
  )
}

/** What the last step says about the nodes, by the real status (never "connecting" over an ERROR). */
function connectSummary(status, tunnelId) {
  switch (status) {
    case 'CONNECTED':
      return ['Connected', `The nodes are connected to tunnel ${tunnelId}.`]
    case 'LIMITED':
      return ['Partly connected', `Some nodes are connected to tunnel ${tunnelId}; others are not (see below).`]
    case 'ERROR':
      return ['The key was refused', `The tunnel server refused the key of tunnel ${tunnelId}: see why below.`]
    case 'UNAVAILABLE':
      return ['Not connected', `The nodes cannot connect to tunnel ${tunnelId} yet: see why below. This page updates by itself.`]
    default:
      return ['Connecting', `The nodes are connecting to tunnel ${tunnelId}. This page updates by itself.`]
  }
}

function connectStep(checked) {
  const panel = statusPanel()
  const heading = h('h2', { id: 'connect-state' }, 'Connecting')
  const intro = h('p', { id: 'connect-summary' }, connectSummary(null, checked.tunnelId)[1])
  const link = h('div')
  render(
    'Connecting · add security key',
    crumbs(),
    h('h1', {}, 'Security key added'),
    steps(3),
    h('div', { role: 'status', 'aria-live': 'polite', id: 'connect-status' }, heading, intro, panel.el),
    h('h2', {}, 'Application link URL'),
    link,
    h('div', { class: 'actions-row' }, h('a', { class: 'button', href: '/', 'data-nav': '' }, 'Done: view the tunnel')),
  )
  const fresh = freshness(document.getElementById('main'))
  document.getElementById('connect-status').before(fresh.el)
  let shownUrl
  router.own(poll(async () => {
    const view = await api.get('/api/v1/instance/status')
    const [state, summary] = connectSummary(view.status, checked.tunnelId)
    setText(heading, state)
    setText(intro, summary)
    panel.update(view)
    const url = view.tunnel && view.tunnel.applicationLinkUrl
    if (url === shownUrl) return
    shownUrl = url
    link.replaceChildren(
      url
        ? h('p', {}, h('span', { class: 'secret', id: 'application-link-url' }, url), ' ', copyButton('Copy URL', () => url), h('span', { class: 'help' }, ' Use it to create the application link in each cloud product.'))
        : h('p', { class: 'help' }, 'The tunnel server tells it when the first node connects.'),
    )
  }, LIVE_MS, fresh))
}

function nodesPage() {
  header('nodes')
  const error = alertBox('nodes-error')
  const body = h('tbody')
  const empty = h('tr', {}, h('td', { colspan: 7 }, 'No agent node has registered yet: start apptunnel agent with this database on each node.'))
  const { fresh, start } = live(() => refresh())
  const self = shell.session.node
  const restart = self ? restartCommands(self) : null
  render(
    'Cluster nodes · instance console',
    h('p', { class: 'breadcrumbs' }, 'Administration › Clustering'),
    h('h1', {}, 'Cluster nodes'),
    h('p', { class: 'lead' }, 'Every agent node of this instance and its connection to the tunnel. A node that is down keeps the instance LIMITED until it is back, or until you remove it here if it is gone for good.'),
    fresh.el,
    error,
    h('table', {}, h('caption', { class: 'visually-hidden' }, 'Agent nodes of this instance'), h('thead', {}, h('tr', {}, ['Node', 'Host', 'State', 'Status', 'Sessions', 'Last heartbeat', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))), body),
    restart ? restart.el : null,
    self ? addNodeSection(self) : null,
  )
  const rows = new Map()
  const refresh = async () => {
    const view = await api.get('/api/v1/instance/status')
    if (restart) restart.update(view.nodes)
    const ids = new Set(view.nodes.map((n) => n.id))
    for (const [id, row] of rows) {
      if (!ids.has(id)) {
        row.tr.remove()
        rows.delete(id)
      }
    }
    if (view.nodes.length === 0) {
      if (!empty.isConnected) body.replaceChildren(empty)
      return
    }
    empty.remove()
    let previous = null
    for (const n of view.nodes) {
      let row = rows.get(n.id)
      if (row === undefined) {
        row = nodeRow(n, self, removeNode)
        rows.set(n.id, row)
      }
      // Keep the server's order without moving rows that are already in place (moving one would drop focus).
      const wanted = previous === null ? body.firstChild : previous.nextSibling
      if (wanted !== row.tr) body.insertBefore(row.tr, wanted)
      row.update(n)
      previous = row.tr
    }
  }
  const removeNode = async (id) => {
    if (!(await confirmDialog({ title: `Remove node ${id}?`, body: ['It no longer counts towards the instance status. If its agent starts again, it registers again.'], confirmLabel: 'Remove node', danger: true }))) return
    try {
      await api.del(`/api/v1/instance/nodes/${encodeURIComponent(id)}`)
      announce(`Node ${id} removed`)
      await refresh()
    } catch (err) {
      showError(error, err)
    }
  }
  return start()
}

function nodeRow(first, self, removeNode) {
  const isSelf = self && self.id === first.id
  const hostName = h('span', {})
  const bus = h('p', { class: 'reason', hidden: true })
  // The node serving this page is reached at the address the browser used.
  const host = h('td', { 'data-label': 'Host' }, hostName, bus, isSelf ? h('p', { class: 'reason' }, `console ${location.host}`) : null)
  const state = h('td', { 'data-label': 'State', class: 'live-value' })
  const badge = statusBadge(first.status)
  const reason = h('p', { class: 'reason live-value' })
  const sessions = h('td', { 'data-label': 'Sessions', class: 'live-value' })
  const heartbeat = h('td', { 'data-label': 'Last heartbeat' })
  const version = h('p', { class: 'reason' })
  const actions = h('td', { 'data-label': 'Actions' })
  let shownOnline
  let shownHeartbeat
  const tr = h(
    'tr',
    { 'data-node-id': first.id },
    h('th', { scope: 'row', 'data-label': 'Node' }, h('span', { class: 'nowrap' }, first.id), version, isSelf ? h('p', { class: 'reason' }, h('span', { class: 'tag', title: 'The node whose console you are using' }, 'this console')) : null),
    host,
    state,
    h('td', { 'data-label': 'Status' }, badge, reason),
    sessions,
    heartbeat,
    actions,
  )
  return {
    tr,
    update(n) {
      setText(hostName, n.address)
      bus.hidden = !n.busAddress
      setText(bus, n.busAddress ? `cluster bus ${n.busAddress}` : '')
      setText(state, n.online ? 'Running' : 'Down')
      setStatus(badge, n.status)
      setText(reason, localTimes(n.reason))
      setText(sessions, `${n.sessions} of ${n.sessionsWanted}`)
      setText(version, `version ${n.version}`)
      if (n.lastHeartbeat !== shownHeartbeat) {
        shownHeartbeat = n.lastHeartbeat
        heartbeat.replaceChildren(when(n.lastHeartbeat))
      }
      if (n.online !== shownOnline) {
        shownOnline = n.online
        actions.replaceChildren(n.online ? '—' : h('button', { type: 'button', 'aria-label': `Remove node ${n.id}`, onclick: () => removeNode(n.id) }, 'Remove'))
      }
    },
  }
}

/** The command that starts `nodeId` again, modelled on the node serving this console. */
function startCommand(self, nodeId) {
  return `apptunnel agent --database ${quote(self.database)} --upstream ${quote(self.upstream)} --node-id ${quote(nodeId)}`
}

/** For each node that is down: the command that starts it again (boxes come and go with the nodes). */
function restartCommands(self) {
  const list = h('div')
  const el = h('section', { 'aria-labelledby': 'restart-title', hidden: true }, h('h2', { id: 'restart-title' }, 'Start the nodes that are down'), h('p', {}, 'On the host of each node that is down (with the upstream that host uses):'), list)
  const boxes = new Map()
  return {
    el,
    update(nodes) {
      const down = nodes.filter((n) => !n.online).map((n) => n.id)
      for (const [id, box] of boxes) {
        if (!down.includes(id)) {
          box.remove()
          boxes.delete(id)
        }
      }
      for (const id of down) {
        if (boxes.has(id)) continue
        const box = commandBox(`node-command-${id}`, `Start node ${id} (last seen on its host)`, startCommand(self, id))
        boxes.set(id, box)
        list.append(box)
      }
      el.hidden = down.length === 0
    },
  }
}

/** How to start one more node, modelled on the node serving this console. */
function addNodeSection(self) {
  const command = `apptunnel agent --database ${quote(self.database)} --upstream ${quote(self.upstream)} --data-dir /var/lib/apptunnel/NODE-NAME`
  return h(
    'section',
    { 'aria-labelledby': 'add-node-title' },
    h('h2', { id: 'add-node-title' }, 'Start a node'),
    h('p', {}, 'Run this on each host that should carry the tunnel (a stopped node too, with its own data directory): it reads the security key from the instance database and connects by itself.'),
    commandBox('node-command', 'Start an agent node', command, 'Replace NODE-NAME with a name of the node; change --upstream if the app listens elsewhere on that host.'),
  )
}

/** A shell word: quoted when it holds anything a shell would read differently. */
function quote(word) {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
}

function auditPage() {
  header('audit')
  const error = alertBox('audit-error')
  const body = h('tbody')
  render(
    'Audit log · instance console',
    h('p', { class: 'breadcrumbs' }, 'Administration › Audit log'),
    h('h1', {}, 'Audit log'),
    h('p', { class: 'lead' }, 'Sign-ins and every change made through this console, newest first (the last 200).'),
    error,
    h('table', {}, h('caption', { class: 'visually-hidden' }, 'Audit events of this instance'), h('thead', {}, h('tr', {}, ['When', 'Who', 'What', 'Target', 'From'].map((c) => h('th', { scope: 'col' }, c)))), body),
  )
  api.get('/api/v1/instance/audit?limit=200').then(
    ({ events }) => {
      body.replaceChildren(
        ...(events.length === 0
          ? [h('tr', {}, h('td', { colspan: 5 }, 'No events yet.'))]
          : events.map((e) => h('tr', {}, h('td', { 'data-label': 'When' }, when(e.at)), h('td', { 'data-label': 'Who' }, e.actor), h('td', { 'data-label': 'What' }, e.action), h('td', { 'data-label': 'Target' }, e.target ?? '—'), h('td', { 'data-label': 'From' }, e.sourceAddress ?? '—')))),
      )
    },
    (err) => showError(error, err),
  )
}

function accountPage() {
  header('account')
  render(
    'Account · instance console',
    h('p', { class: 'breadcrumbs' }, 'Administration › Account'),
    h('h1', {}, 'Account'),
    h('p', {}, 'Signed in as ', h('strong', {}, shell.session.user.username), '.'),
    h('h2', {}, 'Change password'),
    changePasswordForm({ api }),
  )
}

void shell.start(() => {
  if (pendingKey !== null) void router.go('/add-key', { replace: true })
  else router.show()
})
