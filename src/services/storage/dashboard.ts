import { statfs } from 'node:fs/promises'
import { Counter, Gauge, type Registry } from 'prom-client'
import { formatAmount } from '../../protocols/units.ts'
import { formatSize } from '../../utils/size.ts'
import { healthOf, monthlyRent, type StorageClient } from '../../storage/client/storage-client.ts'
import { STORAGE_SERVICE } from './methods.ts'
import type { StorageHost } from '../../storage/host/storage-host.ts'
import type { ModuleComponents, RouteTable, Warning } from '../module.ts'

/** A host this full is worth a look: the next contracts will not fit */
const HOST_FULL_FRACTION = 0.9

/** Less free space than this on the data directory's disk and the node may fail to write its records */
const DISK_LOW_BYTES = 1024 ** 3

/** Months of earnings the hosting page shows */
const EARNING_MONTHS = 6

type Parts = Pick<ModuleComponents, 'tabs' | 'wallet' | 'chain' | 'dataDir'>

/** GET /v1/hosting: this node as a host, for the dashboard: space, contracts, renters, what hosting earned by month */
export function hostingRoutes (host: StorageHost, enabled: boolean, { tabs }: Parts): RouteTable {
  return {
    'GET /v1/hosting': async ({ json }) => {
      const used = host.used()
      const reserved = host.reserved()
      const free = Math.max(0, host.capacity - reserved)
      const now = new Date()
      const since = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - (EARNING_MONTHS - 1), 1)
      const byMonth = await tabs.tally(since, Infinity, c => c.earned && c.service === STORAGE_SERVICE ? new Date(c.at).toISOString().slice(0, 7) : undefined)
      json(200, {
        enabled,
        capacity: host.capacity,
        capacityText: formatSize(host.capacity),
        used,
        usedText: formatSize(used),
        // promised to contracts, held or not yet: what new contracts are refused beyond
        reserved,
        reservedText: formatSize(reserved),
        free,
        freeText: formatSize(free),
        contracts: host.contractsHeld(),
        renters: host.renters().map(r => ({ peer: r.renter, contracts: r.contracts, bytes: r.bytes, bytesText: formatSize(r.bytes) })),
        earnings: Array.from({ length: EARNING_MONTHS }, (_, i) => {
          const month = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - (EARNING_MONTHS - 1) + i, 1)).toISOString().slice(0, 7)
          const row = byMonth.get(month)
          return { month, earned: formatAmount(row?.earned ?? 0n), calls: row?.calls ?? 0 }
        })
      })
    }
  }
}

/**
 * What an operator should look at in storage: files lost or at risk,
 * hosts condemned, repairs that are stuck, rent the wallet cannot pay
 * for a month, a host or a disk nearly full
 */
export async function storageWarnings (client: StorageClient, host: StorageHost, enabled: boolean, { wallet, chain, dataDir }: Parts): Promise<Warning[]> {
  const warnings: Warning[] = []
  const say = (severity: Warning['severity'], text: string): void => { warnings.push({ module: STORAGE_SERVICE, severity, text }) }
  const live = (await client.list()).filter(o => o.removedAt == null)
  const byState = new Map<string, string[]>()
  const condemned = new Set<string>()
  const stuck: string[] = []
  let rent = 0
  for (const o of live) {
    const state = healthOf(o).state
    byState.set(state, [...(byState.get(state) ?? []), o.name])
    for (const c of Object.values(o.contracts)) {
      if (c.lost != null) condemned.add(c.host)
    }
    if (o.repair?.problem != null) stuck.push(`${o.name}: ${o.repair.problem}`)
    rent += monthlyRent(o)
  }
  const names = (list: string[]): string => list.slice(0, 3).map(n => `"${n}"`).join(', ') + (list.length > 3 ? ` and ${list.length - 3} more` : '')
  const lost = byState.get('lost') ?? []
  if (lost.length > 0) say('critical', `${lost.length} object(s) lost: fewer shards than needed are left (${names(lost)}); store info NAME shows what is left`)
  const atRisk = byState.get('at-risk') ?? []
  if (atRisk.length > 0) say('critical', `${atRisk.length} object(s) at risk: one more host gone and they are lost (${names(atRisk)}); repair runs at each check, store repair NAME runs it now`)
  const degraded = byState.get('degraded') ?? []
  if (degraded.length > 0) say('warning', `${degraded.length} object(s) degraded: shards lost, repair under way (${names(degraded)})`)
  if (condemned.size > 0) say('warning', `${condemned.size} host(s) condemned for failed audits or silence: their shards are rebuilt on others`)
  for (const problem of stuck.slice(0, 3)) say('warning', `repair stuck for ${problem}`)
  if (chain != null && rent > 0) {
    const balance = await wallet.balance(chain).catch(() => undefined)
    if (balance != null && balance.confirmed < BigInt(Math.ceil(rent))) {
      say('critical', `the wallet holds ${formatAmount(balance.confirmed)}, less than a month of rent (${formatAmount(BigInt(Math.ceil(rent)))}): fund it (wallet address) or hosts end the contracts`)
    }
  }
  if (enabled && host.reserved() >= host.capacity * HOST_FULL_FRACTION) {
    say('warning', `hosting is ${Math.round(host.reserved() / host.capacity * 100)}% full (${formatSize(host.reserved())} of ${formatSize(host.capacity)} promised): raise services.storage.capacity to take more contracts`)
  }
  const disk = await statfs(dataDir).catch(() => undefined)
  if (disk != null && disk.bavail * disk.bsize < DISK_LOW_BYTES) {
    say('critical', `the disk of ${dataDir} has ${formatSize(disk.bavail * disk.bsize)} free: free space, or the node cannot keep its records and shards`)
  }
  return warnings
}

/** The storage module's figures in the node's registry, read when Prometheus scrapes */
export function storageMetrics (registry: Registry, client: StorageClient, host: StorageHost): void {
  const registers = [registry]
  new Gauge({
    name: 'opencloud_stored_objects',
    help: 'Objects this node stored on the network (every version kept), by health',
    labelNames: ['health'],
    registers,
    async collect () {
      this.reset()
      for (const state of ['healthy', 'degraded', 'at-risk', 'lost']) this.set({ health: state }, 0)
      for (const o of await client.list()) {
        if (o.removedAt == null) this.inc({ health: healthOf(o).state })
      }
    }
  })
  new Gauge({
    name: 'opencloud_stored_bytes',
    help: 'Bytes of the objects this node stored on the network (every version kept), before erasure coding',
    registers,
    async collect () {
      this.set((await client.list()).filter(o => o.removedAt == null).reduce((sum, o) => sum + o.size, 0))
    }
  })
  new Gauge({
    name: 'opencloud_hosted_bytes',
    help: 'Bytes this node holds for renters (state held) and has promised to their contracts (state reserved), and its capacity',
    labelNames: ['state'],
    registers,
    collect () {
      this.set({ state: 'held' }, host.used())
      this.set({ state: 'reserved' }, host.reserved())
      this.set({ state: 'capacity' }, host.capacity)
    }
  })
  new Gauge({
    name: 'opencloud_hosted_contracts',
    help: 'Storage contracts this node holds as a host that have not ended',
    registers,
    collect () { this.set(host.contractsHeld()) }
  })
  new Counter({
    name: 'opencloud_storage_audits_total',
    help: 'Audits of hosts holding this node\'s shards since it started, by outcome (passed, failed, unreachable)',
    labelNames: ['outcome'],
    registers,
    collect () {
      this.reset()
      this.inc({ outcome: 'passed' }, client.tallies.auditsPassed)
      this.inc({ outcome: 'failed' }, client.tallies.auditsFailed)
      this.inc({ outcome: 'unreachable' }, client.tallies.auditsUnreachable)
    }
  })
  new Counter({
    name: 'opencloud_storage_shards_repaired_total',
    help: 'Shards of this node\'s objects rebuilt on new hosts since it started',
    registers,
    collect () {
      this.reset()
      this.inc(client.tallies.shardsRepaired)
    }
  })
}
