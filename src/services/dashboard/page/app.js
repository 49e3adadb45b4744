// The operator's dashboard: static, holding nothing of the node. Every
// figure comes from the control API with the token kept in sessionStorage
// (for this tab only). Values from the node go into the page as text
// nodes, never as markup: an object's name or a peer's offer stays text.

const TOKEN_KEY = 'opencloud-token'
const REFRESH_MS = 5_000
const PAGES = {
  overview: { title: 'Overview', render: overview },
  money: { title: 'Money', render: money },
  hosting: { title: 'Hosting', render: hosting },
  files: { title: 'My files', render: files },
  market: { title: 'Market', render: market },
  reputation: { title: 'Reputation', render: reputation },
  ledger: { title: 'Ledger', render: ledger }
}
const COLORS = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#dc2626', '#0891b2', '#4b5563']
const SVG = 'http://www.w3.org/2000/svg'
const $ = (selector) => document.querySelector(selector)

/** An API error the page can say; status 401 sends the user back to the login */
class ApiError extends Error {
  constructor (status, message) {
    super(message)
    this.status = status
  }
}

let timer
let selectedObject

async function api (path, { token = sessionStorage.getItem(TOKEN_KEY), method = 'GET', body } = {}) {
  const headers = {}
  if (token != null) headers.authorization = `Bearer ${token}`
  if (body != null) headers['content-type'] = 'application/json'
  const res = await fetch(path, { method, headers, body: body == null ? undefined : JSON.stringify(body) })
  const text = await res.text()
  let json
  try { json = JSON.parse(text) } catch { json = undefined }
  if (!res.ok) {
    throw new ApiError(res.status, json?.error?.message ?? `${res.status} ${res.statusText}`)
  }
  return json
}

/** An element with attributes (class, text, title, data-*, href) and children */
function el (tag, attrs = {}, ...children) {
  const node = document.createElement(tag)
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null) continue
    if (key === 'text') node.textContent = String(value)
    else if (key === 'class') node.className = value
    else if (key === 'onclick') node.addEventListener('click', value)
    else node.setAttribute(key, String(value))
  }
  node.append(...children.flat().filter(c => c != null).map(c => (typeof c === 'string' || typeof c === 'number') ? document.createTextNode(String(c)) : c))
  return node
}

const short = (peer) => peer.length > 20 ? `${peer.slice(0, 7)}…${peer.slice(-8)}` : peer
const peerCell = (peer) => el('span', { title: peer, class: 'wide', text: short(peer) })
const btc = (amount) => Number.parseFloat(String(amount ?? '0'))
const when = (iso) => iso == null ? 'never' : new Date(iso).toLocaleString()
const card = (label, value, figure) => el('div', { class: 'card' }, el('h2', { text: label }), el('div', { class: 'big', 'data-figure': figure, text: value }))
const panel = (title, ...children) => el('div', { class: 'panel' }, el('h2', { text: title }), ...children)

function table (headers, rows, numeric = []) {
  return el('table', {},
    el('thead', {}, el('tr', {}, headers.map((h, i) => el('th', { class: numeric.includes(i) ? 'num' : null, text: h })))),
    el('tbody', {}, rows))
}
const row = (cells, numeric = [], attrs = {}) => el('tr', attrs, cells.map((c, i) => c instanceof Node && c.nodeName === 'TD' ? c : el('td', { class: numeric.includes(i) ? 'num' : null }, c)))

function duration (seconds) {
  const units = [['d', 86_400], ['h', 3_600], ['min', 60], ['s', 1]]
  const parts = []
  let left = Math.round(seconds)
  for (const [name, size] of units) {
    if (left >= size || (name === 's' && parts.length === 0)) {
      parts.push(`${Math.floor(left / size)} ${name}`)
      left %= size
    }
    if (parts.length === 2) break
  }
  return parts.join(' ')
}

/** A horizontal stacked bar: parts [{ value, className, label }] */
function stackBar (parts) {
  const total = parts.reduce((s, p) => s + p.value, 0)
  const bar = el('div', { class: 'bar', role: 'img', 'aria-label': parts.map(p => `${p.label}: ${p.value}`).join(', ') })
  for (const p of parts) {
    if (total === 0 || p.value === 0) continue
    const span = el('span', { class: p.className, title: `${p.label}: ${p.text ?? p.value}` })
    span.style.width = `${(p.value / total) * 100}%`
    bar.append(span)
  }
  const legend = el('div', { class: 'legend' }, parts.map(p => el('span', {}, el('i', { class: p.className }), `${p.label} ${p.text ?? p.value}`)))
  return el('div', {}, bar, legend)
}

function svg (tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag)
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value))
  if (text != null) node.textContent = text
  return node
}

/** A chart frame: y axis from 0 to the largest value, four grid lines labelled by `format` */
function frame (max, format) {
  const W = 1000; const H = 220; const L = 110; const B = 28; const T = 10
  const root = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}` })
  const top = max > 0 ? max : 1
  for (let i = 0; i <= 4; i++) {
    const y = T + (H - B - T) * (1 - i / 4)
    root.append(svg('line', { class: 'grid', x1: L, x2: W, y1: y, y2: y }))
    root.append(svg('text', { x: L - 6, y: y + 4, 'text-anchor': 'end' }, format(top * i / 4)))
  }
  return { root, W, H, L, B, T, y: (v) => T + (H - B - T) * (1 - v / top) }
}

const btcLabel = (v) => v === 0 ? '0' : `${Number(v.toPrecision(3))} BTC`

/** Bars per label, one per series side by side: series [{ name, color, values }] */
function barChart (labels, series) {
  const max = Math.max(0, ...series.flatMap(s => s.values))
  if (max === 0) {
    return el('p', { class: 'muted', text: `nothing ${series.map(s => s.name).join(' or ')} in ${labels[0]} to ${labels[labels.length - 1]}` })
  }
  const f = frame(max, btcLabel)
  const slot = (f.W - f.L) / Math.max(1, labels.length)
  const width = Math.max(2, (slot * 0.7) / series.length)
  labels.forEach((label, i) => {
    series.forEach((s, j) => {
      const y = f.y(s.values[i])
      const bar = svg('rect', { x: f.L + i * slot + slot * 0.15 + j * width, y, width, height: f.H - f.B - y, fill: s.color })
      bar.append(svg('title', {}, `${label} ${s.name}: ${s.values[i]} BTC`))
      f.root.append(bar)
    })
    if (labels.length <= 16 || i % 2 === 0) f.root.append(svg('text', { x: f.L + i * slot + slot / 2, y: f.H - 8, 'text-anchor': 'middle' }, label))
  })
  return el('div', {}, f.root, el('div', { class: 'legend' }, series.map(s => { const i = el('i'); i.style.background = s.color; return el('span', {}, i, s.name) })))
}

/** Lines over time: series [{ name, color, points: [{ t, v }] }] */
function lineChart (series) {
  const all = series.flatMap(s => s.points)
  if (all.length === 0) return el('p', { class: 'muted', text: 'no prices sampled yet: the node samples the market every minute' })
  const t0 = Math.min(...all.map(p => p.t)); const t1 = Math.max(...all.map(p => p.t))
  const f = frame(Math.max(...all.map(p => p.v)), btcLabel)
  const x = (t) => f.L + (f.W - f.L - 10) * (t1 === t0 ? 0.5 : (t - t0) / (t1 - t0))
  for (const s of series) {
    const d = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.t).toFixed(1)},${f.y(p.v).toFixed(1)}`).join(' ')
    f.root.append(svg('path', { d, fill: 'none', stroke: s.color, 'stroke-width': 2 }))
    if (s.points.length === 1) f.root.append(svg('circle', { cx: x(s.points[0].t), cy: f.y(s.points[0].v), r: 3, fill: s.color }))
  }
  for (const t of [t0, t1]) f.root.append(svg('text', { x: x(t), y: f.H - 8, 'text-anchor': t === t0 ? 'start' : 'end' }, new Date(t).toLocaleTimeString()))
  return el('div', {}, f.root, el('div', { class: 'legend' }, series.map(s => { const i = el('i'); i.style.background = s.color; return el('span', {}, i, s.name) })))
}

/** GET that answers null for a route this node does not serve now (409: no ledger, payments off) */
async function optional (path) {
  try {
    return await api(path)
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 409)) return null
    throw err
  }
}

// ---- pages: each returns the section's new children ----

async function overview () {
  const [id, peers, proc, warnings] = await Promise.all([api('/v1/id'), api('/v1/peers'), api('/v1/process'), api('/v1/warnings')])
  const connected = peers.filter(p => p.connected).length
  const list = warnings.warnings.length === 0
    ? el('ul', { id: 'warnings', class: 'plain' }, el('li', { class: 'ok-line', text: '✓ no warnings: connected, paying and storing as it should' }))
    : el('ul', { id: 'warnings', class: 'plain' }, warnings.warnings.map(w => el('li', { class: `warning severity-${w.severity}` }, el('strong', { text: `${w.module}: ` }), w.text)))
  return [
    panel('Warnings', list),
    el('div', { class: 'cards' },
      card('Peers connected', connected, 'peers-connected'),
      card('Version', id.version, 'version'),
      card('Uptime', duration(proc.uptimeSeconds), 'uptime'),
      card('Memory', `${Math.round(proc.memory.rss / 2 ** 20)} MiB`, 'memory')),
    panel('Identity',
      el('p', {}, 'PeerId (its OpenCloud ID): ', el('span', { class: 'wide', 'data-figure': 'peerId', text: id.peerId })),
      el('p', {}, 'Services: ', el('span', { 'data-figure': 'services', text: id.services.join(', ') })),
      el('p', {}, 'Listening on:'), el('ul', { class: 'plain wide', 'data-figure': 'addresses' }, id.addresses.map(a => el('li', { text: a })))),
    panel('Peers', table(['peer', 'addresses', 'connected'], peers.map(p => row([peerCell(p.id), p.addrs.join(' '), p.connected ? 'yes' : 'no']))))
  ]
}

async function money () {
  const [wallet, summary, daily, tabs] = await Promise.all([api('/v1/wallet'), api('/v1/payments/summary'), api('/v1/payments/daily?days=14'), api('/v1/payments/tabs')])
  const balance = wallet.balance
  const openChannels = tabs.channels
  const tabRows = [...tabs.receivable.map(t => ({ ...t, role: 'owed to you' })), ...tabs.payable.map(t => ({ ...t, role: 'you owe' }))]
  return [
    el('div', { class: 'cards' },
      card('Balance, confirmed', balance == null ? 'payments off' : balance.confirmed, 'balance-confirmed'),
      card('Unconfirmed', balance == null ? '—' : balance.unconfirmed, 'balance-unconfirmed'),
      card('Earned', summary.total.earned, 'earned-total'),
      card('Spent', summary.total.spent, 'spent-total')),
    panel('Earned and spent per day (last 14 days, UTC)', barChart(daily.days.map(d => d.day.slice(5)), [
      { name: 'earned', color: '#16a34a', values: daily.days.map(d => btc(d.earned)) },
      { name: 'spent', color: '#dc2626', values: daily.days.map(d => btc(d.spent)) }])),
    panel('Payment channels', openChannels.length === 0
      ? el('p', { class: 'muted', text: 'no channel open' })
      : table(['peer', 'role', 'state', 'capacity', 'paid', 'remaining', 'blocks left'], openChannels.map(c => row([peerCell(c.peer), c.role, c.state, c.capacity, c.paid, c.remaining, c.blocksLeft], [3, 4, 5, 6])), [3, 4, 5, 6])),
    panel('Tabs (deferred payments)', tabRows.length === 0
      ? el('p', { class: 'muted', text: 'nothing owed either way' })
      : table(['peer', '', 'outstanding', 'due', 'overdue', 'promises'], tabRows.map(t => row([peerCell(t.peer), t.role, t.outstanding, t.due, t.overdue, t.promises], [2, 3, 4, 5])), [2, 3, 4, 5])),
    el('p', { class: 'muted', text: `wallet network ${wallet.network}; identity address ${wallet.identityAddress}` })
  ]
}

async function hosting () {
  const h = await api('/v1/hosting')
  return [
    h.enabled ? null : el('div', { class: 'error', text: 'this node hosts no storage (services.storage.enabled is false)' }),
    el('div', { class: 'cards' },
      card('Capacity', h.capacityText, 'capacity'),
      card('Held', h.usedText, 'used'),
      card('Free', h.freeText, 'free'),
      card('Contracts held', h.contracts, 'contracts-held')),
    panel('Space', stackBar([
      { value: h.used, className: 'fill-used', label: 'held', text: h.usedText },
      { value: Math.max(0, h.reserved - h.used), className: 'fill-reserved', label: 'promised, not yet held', text: h.reservedText },
      { value: h.free, className: 'fill-free', label: 'free', text: h.freeText }])),
    panel('Earnings per month', barChart(h.earnings.map(e => e.month), [{ name: 'earned by hosting', color: '#16a34a', values: h.earnings.map(e => btc(e.earned)) }])),
    panel('Renters', h.renters.length === 0
      ? el('p', { class: 'muted', text: 'nobody rents space here yet' })
      : table(['renter', 'contracts', 'held'], h.renters.map(r => row([peerCell(r.peer), r.contracts, r.bytesText], [1, 2])), [1, 2]))
  ]
}

async function files () {
  const store = await api('/v1/store')
  const objects = store.objects
  const count = (state) => objects.filter(o => o.health.state === state).length
  const detail = selectedObject != null && objects.some(o => o.name === selectedObject) ? await objectDetail(selectedObject) : null
  return [
    el('div', { class: 'cards' },
      card('Objects', objects.length, 'objects'),
      card('Spent on storage, on chain', store.costs.onChain, 'storage-cost')),
    panel('Health', stackBar(['healthy', 'degraded', 'at-risk', 'lost'].map(s => ({ value: count(s), className: `fill-${s}`, label: s })))),
    panel('Objects (click one for its segments and hosts)', objects.length === 0
      ? el('p', { class: 'muted' }, 'nothing stored yet: ', el('code', { text: 'npx opencloud-node store put FILE' }))
      : table(['name', 'health', 'size', 'redundancy', 'cost per month', 'last audit', 'repairs'], objects.map(o => row([
        el('td', { 'data-figure': 'name', text: o.name }),
        el('td', { 'data-figure': 'health' }, el('span', { class: `state state-${o.health.state}`, text: o.health.state })),
        o.sizeText, o.redundancy, o.rentPerMonth, when(o.health.lastAudit), o.health.repairProblem ?? 'none'
      ], [2], { 'data-object': o.name, class: `clickable${o.name === selectedObject ? ' selected' : ''}`, onclick: () => { selectedObject = o.name; void refresh() } })))),
    detail
  ]
}

async function objectDetail (name) {
  const o = await api(`/v1/store/info?object=${encodeURIComponent(name)}`)
  return panel(`${o.name}: ${o.redundancyText}`,
    table(['host', 'contract', 'held', 'audits passed', 'failed', 'last passed', 'state'], o.contracts.map(c => row([
      peerCell(c.host), el('span', { class: 'wide', text: c.id.slice(0, 12) }), `${c.bytesHeld} bytes`,
      c.audits?.passed ?? 0, c.audits?.failed ?? 0, when(c.audits?.lastPassed), c.lost != null ? `lost: ${c.lost.reason}` : c.ended != null ? 'ended' : 'live'
    ], [2, 3, 4]))),
    el('h2', { text: 'Segments' }),
    table(['segment', 'bytes', 'shards on hosts'], o.segmentList.map(s => row([s.index + 1, s.bytes,
      el('span', {}, s.shards.map((x, i) => el('span', { title: x.host, class: x.lost == null ? null : 'error-text', text: `${i + 1}:${short(x.host)}${x.lost == null ? '' : ' (lost)'}  ` })))], [0, 1]))))
}

async function market () {
  const [id, history, stats, offers] = await Promise.all([api('/v1/id'), api('/v1/market/history'), api('/v1/market/stats'), api('/v1/market/prices')])
  const byKey = new Map()
  for (const p of history.points) {
    const key = `${p.service}.${p.method} per ${p.unit}`
    if (!byKey.has(key)) byKey.set(key, [])
    byKey.get(key).push({ t: Date.parse(p.at), v: btc(p.median) })
  }
  const mine = offers.filter(o => o.provider === id.peerId)
  return [
    panel('Median prices over time', lineChart([...byKey].map(([name, points], i) => ({ name, points, color: COLORS[i % COLORS.length] })))),
    panel('The market now', table(['service', 'unit', 'offers', 'lowest', 'median', '90th percentile'], stats.map(s => row([`${s.service}.${s.method}`, s.unit, s.count, s.min, s.median, s.p90], [2, 3, 4, 5])), [2, 3, 4, 5])),
    panel("This node's offers", mine.length === 0
      ? el('p', { class: 'muted', text: 'this node offers nothing priced on the market' })
      : table(['service', 'price', 'valid until'], mine.map(o => row([`${o.service}.${o.method}`, `${o.price} per ${o.unit}`, when(o.validUntil)]))))
  ]
}

async function reputation () {
  const peers = await api('/v1/reputation')
  const sorted = [...peers].sort((a, b) => b.trust - a.trust)
  // the records this node keeps of the peers it dealt with (each peer's own list), newest first
  const lists = await Promise.all(peers.slice(0, 10).map(p => api(`/v1/reputation/records?peer=${encodeURIComponent(p.peer)}`)))
  const own = lists.flat().sort((a, b) => b.at - a.at)
  const rows = (list) => list.map(p => row([peerCell(p.peer), p.trust.toFixed(3), p.score.toFixed(3), p.satisfactory, p.unsatisfactory], [1, 2, 3, 4]))
  const head = ['peer', 'trust', 'score', 'satisfactory', 'unsatisfactory']
  // with ten peers or fewer, one table says both ends
  const ends = sorted.length <= 10
    ? panel('Peers by trust', table(head, rows(sorted), [1, 2, 3, 4]))
    : el('div', { class: 'two' },
      panel('Most trusted', table(head, rows(sorted.slice(0, 5)), [1, 2, 3, 4])),
      panel('Least trusted', table(head, rows(sorted.slice(-5).reverse()), [1, 2, 3, 4])))
  return [
    ends,
    panel("This node's records (what it saw of its peers, newest first)", own.length === 0
      ? el('p', { class: 'muted', text: 'no records yet: they come with calls made and served' })
      : table(['peer', 'as', 'outcome', 'event', 'call', 'at'], own.slice(0, 20).map(r => row([peerCell(r.peer), r.role, r.outcome, r.event, r.service == null ? '' : `${r.service}.${r.method ?? ''}`, when(r.at)]))))
  ]
}

async function ledger () {
  const status = await optional('/v1/ledger')
  if (status == null) {
    return [el('p', { class: 'muted', 'data-figure': 'no-ledger', text: 'this node runs no Cloud Ledger (ledger.genesis in config.json names one)' })]
  }
  const codes = await optional('/v1/ledger/promo/mine') ?? []
  return [
    el('div', { class: 'cards' },
      card('Height', status.height, 'ledger-height'),
      card('Last block', when(status.lastBlockAt), 'ledger-last-block'),
      card('Pending transactions', status.pending, 'ledger-pending'),
      card('This node', status.validator ? 'a validator' : 'a follower', 'ledger-role')),
    panel('Validators', el('ul', { class: 'plain wide' }, status.validators.map(v => el('li', { title: v, text: v === status.nextProposer ? `${v}  (proposes next)` : v })))),
    panel("This node's promo codes", codes.length === 0
      ? el('p', { class: 'muted', text: 'none' })
      : table(['code', 'state', 'credit'], codes.map(c => row([el('span', { class: 'wide', text: short(c.code ?? '') }), c.state ?? '', c.credit ?? ''])))),
    el('p', { class: 'muted wide', text: `ledger ${status.ledger}, last block ${status.lastBlock}` })
  ]
}

// ---- routing, refresh and login ----

function pageName () {
  const name = location.hash.replace(/^#\/?/, '')
  return Object.hasOwn(PAGES, name) ? name : 'overview'
}

async function refresh () {
  clearTimeout(timer)
  const name = pageName()
  for (const link of document.querySelectorAll('nav a')) link.classList.toggle('current', link.dataset.page === name)
  for (const key of Object.keys(PAGES)) $(`#page-${key}`).hidden = key !== name
  $('#title').textContent = PAGES[name].title
  try {
    const children = await PAGES[name].render()
    if (pageName() === name) {
      $(`#page-${name}`).replaceChildren(...children.filter(c => c != null))
      $('#banner').hidden = true
      $('#updated').textContent = `updated ${new Date().toLocaleTimeString()}`
    }
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      logout(err.message)
      return
    }
    $('#banner').hidden = false
    $('#banner').textContent = `could not refresh: ${err.message}`
  }
  timer = setTimeout(() => { void refresh() }, REFRESH_MS)
}

function showApp () {
  $('#login').hidden = true
  $('#app').hidden = false
  void refresh()
}

function logout (message = '') {
  clearTimeout(timer)
  sessionStorage.removeItem(TOKEN_KEY)
  for (const key of Object.keys(PAGES)) $(`#page-${key}`).replaceChildren()
  $('#app').hidden = true
  $('#login').hidden = false
  $('#login-error').textContent = message
}

async function login (event) {
  event.preventDefault()
  const token = $('#token').value.trim()
  $('#login-error').textContent = ''
  try {
    await api('/v1/id', { token })
  } catch (err) {
    $('#login-error').textContent = err.message
    return
  }
  sessionStorage.setItem(TOKEN_KEY, token)
  $('#token').value = ''
  showApp()
}

async function start () {
  $('#login-form').addEventListener('submit', (e) => { void login(e) })
  $('#logout').addEventListener('click', () => { logout('logged out') })
  window.addEventListener('hashchange', () => { if (!$('#app').hidden) void refresh() })
  const code = /^#code=([A-Za-z0-9_-]+)$/.exec(location.hash)?.[1]
  if (code != null) {
    // the code is good once: it leaves the address bar whatever the answer
    history.replaceState(null, '', '/#/overview')
    try {
      const { token } = await api('/v1/dashboard/session', { token: null, method: 'POST', body: { code } })
      sessionStorage.setItem(TOKEN_KEY, token)
    } catch (err) {
      logout(err.message)
      return
    }
  }
  if (sessionStorage.getItem(TOKEN_KEY) == null) {
    logout()
    return
  }
  showApp()
}

void start()
