/// <reference lib="dom" />
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { get } from 'node:http'
import chromium from '@sparticuz/chromium'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { tempDir } from '../helpers/nodes.ts'
import { REPO, runCli } from '../helpers/cli.ts'
import { killGroup, startTestnet } from '../helpers/testnet.ts'
import { parsePrometheus } from '../helpers/prometheus.ts'
import type { ChildProcess } from 'node:child_process'

/** Where the pages' screenshots go, to be looked at after a run (CI keeps the folder) */
const ARTIFACTS = process.env.OPENCLOUD_ARTIFACTS ?? join(REPO, 'test-artifacts', 'dashboard')

const PAGES = ['overview', 'money', 'hosting', 'files', 'market', 'reputation', 'ledger']

/**
 * The operator's dashboard in a real browser (issue 24): headless Chromium
 * from @sparticuz/chromium (a binary inside the npm package, nothing
 * downloaded) on the dashboard of a testnet daemon, and GET /metrics as a
 * Prometheus scraper reads it
 */
describe('the dashboard in a browser, and /metrics, on a testnet', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let child: ChildProcess | undefined
  let nodes: any[]
  let browser: Browser
  let me: { dataDir: string, api: string, peerId: string, token: string }
  const cli = async (...args: string[]): ReturnType<typeof runCli> => runCli(['--data-dir', me.dataDir, ...args])

  before(async () => {
    dir = await tempDir()
    const started = await startTestnet(4, dir.path, ['--ledger-validators', '3'])
    child = started.child
    nodes = started.network.nodes
    me = { ...nodes[0], token: (await readFile(join(nodes[0].dataDir, 'api.token'), 'utf8')).trim() }
    await mkdir(ARTIFACTS, { recursive: true })
    browser = await puppeteer.launch({ executablePath: await chromium.executablePath(), args: chromium.args, headless: true })
  })

  after(async () => {
    await browser?.close()
    if (child != null) killGroup(child)
    await dir?.cleanup()
  })

  const scrape = async (node: { api: string, dataDir: string }, token?: string): Promise<Response> => {
    token ??= (await readFile(join(node.dataDir, 'api.token'), 'utf8')).trim()
    return fetch(`${node.api}/metrics`, { headers: { authorization: `Bearer ${token}` } })
  }

  it('serves Prometheus text behind the token, and one call moves the call counters by one on both sides', async () => {
    const refused = await scrape(me, 'wrong')
    assert.equal(refused.status, 401)
    const server = nodes[2] // odd-numbered testnet nodes serve sha256.hash free
    const ok = { service: 'sha256', method: 'hash', status: 'ok' }
    const before = parsePrometheus(await (await scrape(me)).text())
    const served = parsePrometheus(await (await scrape(server)).text())
    assert.equal(before.types.get('opencloud_rpc_calls_total'), 'counter')
    assert.equal(before.types.get('opencloud_rpc_call_seconds'), 'histogram')
    // libp2p's own figures are there too, and the node's engines'
    assert.ok(before.samples.some(s => s.name.startsWith('libp2p_')), 'libp2p metrics are in the registry')
    assert.equal(before.value('opencloud_wallet_balance_btc', { state: 'confirmed' }) != null, true)
    assert.equal(before.value('opencloud_hosted_bytes', { state: 'capacity' }) != null, true)

    const call = await cli('call', server.peerId, 'sha256.hash', '--body', join(REPO, 'package.json'))
    assert.equal(call.code, 0, call.stderr)
    const after = parsePrometheus(await (await scrape(me)).text())
    const servedAfter = parsePrometheus(await (await scrape(server)).text())
    assert.equal((after.value('opencloud_rpc_calls_total', ok) ?? 0) - (before.value('opencloud_rpc_calls_total', ok) ?? 0), 1)
    assert.equal((servedAfter.value('opencloud_rpc_served_total', ok) ?? 0) - (served.value('opencloud_rpc_served_total', ok) ?? 0), 1)
    assert.equal((after.value('opencloud_rpc_call_seconds_count', { service: 'sha256', method: 'hash' }) ?? 0) - (before.value('opencloud_rpc_call_seconds_count', { service: 'sha256', method: 'hash' }) ?? 0), 1)
    const body = (await readFile(join(REPO, 'package.json'))).length
    assert.equal((servedAfter.value('opencloud_rpc_body_bytes_total', { side: 'server', direction: 'in', service: 'sha256' }) ?? 0) - (served.value('opencloud_rpc_body_bytes_total', { side: 'server', direction: 'in', service: 'sha256' }) ?? 0), body)
  })

  it('refuses a wrong token at the login page, logs in with the right one, and every page shows the node\'s figures', async () => {
    // something to show: a stored file, a paid call (a channel), the ledger's blocks
    const put = await cli('store', 'put', join(REPO, 'package.json'), '--name', 'docs/package.json')
    assert.equal(put.code, 0, put.stderr)
    const paid = await cli('call', nodes[1].peerId, 'sha256.hash', '--body', join(REPO, 'package.json'), '--pay', 'channel:1000sat')
    assert.equal(paid.code, 0, paid.stderr)

    const page = await browser.newPage()
    const problems = watch(page)
    await page.setViewport({ width: 1280, height: 860 })
    await page.goto(`${me.api}/`)
    await page.waitForSelector('#token')
    await page.type('#token', 'not-the-token')
    await page.click('#login-submit')
    await page.waitForFunction(() => (document.querySelector('#login-error')?.textContent ?? '') !== '')
    assert.match(await text(page, '#login-error'), /wrong API token/)
    assert.equal(await page.$('[data-figure="peerId"]:not(:empty)'), null, 'nothing of the node shows before a login')
    await page.screenshot({ path: join(ARTIFACTS, 'login-refused.png') })

    await page.$eval('#token', (el) => { (el as HTMLInputElement).value = '' })
    await page.type('#token', me.token)
    await page.click('#login-submit')
    assert.equal(await figure(page, 'peerId'), me.peerId)
    assert.equal(await figure(page, 'peers-connected'), '3')
    await page.screenshot({ path: join(ARTIFACTS, 'overview.png') })

    await open(page, 'files')
    await page.waitForSelector('tr[data-object="docs/package.json"] [data-figure="health"]')
    assert.equal(await text(page, 'tr[data-object="docs/package.json"] [data-figure="name"]'), 'docs/package.json')
    assert.equal(await text(page, 'tr[data-object="docs/package.json"] [data-figure="health"]'), 'healthy')
    await page.screenshot({ path: join(ARTIFACTS, 'files.png') })

    await open(page, 'money')
    // the wallet moves while the channel's funding confirms: the page must catch up with what the CLI says
    const balance = async (): Promise<string> => JSON.parse((await cli('wallet', 'balance', '--json')).stdout).confirmed
    let expected = await balance()
    await page.waitForFunction((want) => document.querySelector('[data-figure="balance-confirmed"]')?.textContent === want, { timeout: 20_000 }, expected).catch(async () => {
      expected = await balance()
      return page.waitForFunction((want) => document.querySelector('[data-figure="balance-confirmed"]')?.textContent === want, { timeout: 20_000 }, expected)
    })
    assert.equal(await figure(page, 'balance-confirmed'), expected)
    assert.match(await figure(page, 'spent-total'), /^0\.0000\d+ BTC$/)
    await page.screenshot({ path: join(ARTIFACTS, 'money.png') })

    await open(page, 'hosting')
    const hosting: any = await (await fetch(`${me.api}/v1/hosting`, { headers: { authorization: `Bearer ${me.token}` } })).json()
    assert.equal(await figure(page, 'capacity'), hosting.capacityText)
    assert.equal(await figure(page, 'contracts-held'), String(hosting.contracts))
    await page.screenshot({ path: join(ARTIFACTS, 'hosting.png') })

    await open(page, 'ledger')
    assert.match(await figure(page, 'ledger-height'), /^[0-9]+$/)
    await page.screenshot({ path: join(ARTIFACTS, 'ledger.png') })

    for (const name of ['market', 'reputation']) {
      await open(page, name)
      await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) })
    }
    assert.deepEqual(problems, [], 'no script error or refused resource on any page')
    await page.close()
  })

  it('logs in once with the link `dashboard` prints, and not twice', async () => {
    const made = await cli('dashboard', '--no-open', '--json')
    assert.equal(made.code, 0, made.stderr)
    const { url, opened } = JSON.parse(made.stdout)
    assert.equal(opened, false)
    assert.match(url, new RegExp(`^${me.api}/#code=[A-Za-z0-9_-]{32}$`))
    // a tab of its own: the token lives in a tab's sessionStorage, so a new one starts logged out
    const page = await browser.newPage()
    await page.goto(url)
    assert.equal(await figure(page, 'peerId'), me.peerId)
    assert.doesNotMatch(page.url(), /code=/, 'the code leaves the address bar')
    const again = await browser.newPage()
    await again.goto(url)
    await again.waitForFunction(() => (document.querySelector('#login-error')?.textContent ?? '') !== '')
    assert.match(await text(again, '#login-error'), /used, expired or wrong/)
    await page.close()
    await again.close()
  })

  it('answers a page only at its loopback name, and frames it nowhere', async () => {
    // fetch sets Host itself: a DNS-rebound page's request is made with node:http
    const rebound = await new Promise<number>((resolve, reject) => {
      get(`${me.api}/`, { headers: { host: 'evil.example:4101' } }, (res) => { res.resume(); resolve(res.statusCode ?? 0) }).once('error', reject)
    })
    assert.equal(rebound, 403)
    const framed = await fetch(`${me.api}/`, { headers: { origin: 'http://evil.example' } })
    assert.equal(framed.status, 403, 'a foreign Origin is refused too')
    const page = await fetch(`${me.api}/`)
    assert.equal(page.status, 200)
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/)
    assert.equal(page.headers.get('x-frame-options'), 'DENY')
    const warnings = await fetch(`${me.api}/v1/warnings`)
    assert.equal(warnings.status, 401, 'what the node knows stays behind the token')
  })
})

/** Script errors and refused requests (a CSP violation, a 4xx/5xx) of a page */
function watch (page: Page): string[] {
  const problems: string[] = []
  page.on('pageerror', (err) => { problems.push(`error: ${String(err)}`) })
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()}`) })
  return problems
}

async function open (page: Page, name: string): Promise<void> {
  assert.ok(PAGES.includes(name))
  await page.click(`a[data-page="${name}"]`)
  await page.waitForSelector(`#page-${name}`, { visible: true })
}

async function figure (page: Page, name: string): Promise<string> {
  const selector = `[data-figure="${name}"]`
  await page.waitForFunction((s) => { const el = document.querySelector(s); return el != null && (el.textContent ?? '') !== '' && (el as HTMLElement).offsetParent != null }, { timeout: 20_000 }, selector)
  return text(page, selector)
}

async function text (page: Page, selector: string): Promise<string> {
  return page.$eval(selector, el => el.textContent ?? '')
}
