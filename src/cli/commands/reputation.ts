import { peerIdFromString } from '@libp2p/peer-id'
import { connectApi } from '../api-client.ts'
import { printJson, table, UsageError, type Command } from '../command.ts'

export const reputationCommand: Command = {
  name: 'reputation',
  summary: 'trust in other peers: this node\'s experience and EigenTrust over everyone\'s',
  usage: 'opencloud-node reputation show [peer]',
  help: `Every call leaves a record: servers are rated on service (served, failed,
took payment and did not serve), callers on payment (deferred payments paid on
time or overdue). Nodes gossip signed summaries of their opinions; global
trust is EigenTrust from this node's point of view, with itself and
reputation.pretrusted pre-trusted and each rater weighted by how well its
opinions match this node's own.

  reputation show          every peer with a trust score, most trusted first
  reputation show <peer>   one peer, with its recent records

The score is trust relative to the average peer: 1 is average, 0 is none.`,
  options: {},
  run: async ({ values, positionals, json, dataDir, out }) => {
    if (positionals[0] !== 'show' || positionals.length > 2) {
      throw new UsageError('usage: opencloud-node reputation show [peer]')
    }
    const peer = positionals[1]
    if (peer != null) {
      try {
        peerIdFromString(peer)
      } catch {
        throw new UsageError(`"${peer}" is not a PeerId (they look like 12D3KooW...); "reputation show" lists the peers this node has opinions of`)
      }
    }
    const api = await connectApi(dataDir, values.api)
    if (peer == null) {
      const views = await api.get<any[]>('/v1/reputation')
      if (json) {
        printJson(out, views)
      } else {
        out.write(views.length === 0 ? 'no opinions yet\n' : table([['PEER', 'SCORE', 'TRUST', 'GOOD', 'BAD'], ...views.map(v => [v.peer, v.score.toFixed(2), v.trust.toFixed(4), String(v.satisfactory), String(v.unsatisfactory)])]))
      }
      return
    }
    const view = await api.get<any>(`/v1/reputation?peer=${encodeURIComponent(peer)}`)
    const records = await api.get<any[]>(`/v1/reputation/records?peer=${encodeURIComponent(peer)}`)
    if (json) {
      printJson(out, { ...view, records })
      return
    }
    out.write(table([['peer', view.peer], ['score', view.score.toFixed(2)], ['trust', view.trust.toFixed(4)], ['satisfactory', String(view.satisfactory)], ['unsatisfactory', String(view.unsatisfactory)]]))
    if (records.length > 0) {
      out.write('\n' + table([['WHEN', 'AS', 'OUTCOME', 'EVENT', 'CALL', 'PROMISED', 'LATENCY'], ...records.map(r => [new Date(r.at).toISOString(), r.role, r.outcome, r.event, r.service == null ? '' : `${r.service}.${r.method}`, r.promised ?? '', r.latencyMs == null ? '' : `${r.latencyMs} ms`])]))
    }
  }
}
