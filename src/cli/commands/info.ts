import { connectApi } from '../api-client.ts'
import { hintLine, printJson, table, UsageError, type Command } from '../command.ts'
import type { NodeInfo } from '../../services/info/index.ts'
import type { PeerEntry } from '../../services/peers/index.ts'

export const idCommand: Command = {
  name: 'id',
  summary: "show the running node's PeerId and addresses",
  usage: 'opencloud-node id [--address]',
  help: `Prints the PeerId (the node's OpenCloud ID), version, addresses and services
of the node running with this data directory.

  --address   print only the address another node joins through, ending in
              /p2p/<PeerId>: for --bootstrap "$(opencloud-node id --address)"`,
  options: {
    address: { type: 'boolean' }
  },
  run: async ({ values, positionals, json, dataDir, out }) => {
    noArguments('id', positionals)
    const api = await connectApi(dataDir, values.api)
    const info = await api.get<NodeInfo>('/v1/id')
    if (values.address === true) {
      const address = joinAddress(info)
      if (json) {
        printJson(out, { address })
      } else {
        out.write(address + '\n')
      }
      return
    }
    if (json) {
      printJson(out, info)
      return
    }
    out.write(table([
      ['PeerId', info.peerId],
      ['version', info.version],
      ...info.addresses.map((a, i) => [i === 0 ? 'addresses' : '', a]),
      ['services', info.services.join(', ')],
      ['started', info.startedAt]
    ]))
  }
}

/** The node's first address, with its PeerId: what --bootstrap takes */
function joinAddress (info: NodeInfo): string {
  const address = info.addresses[0]
  if (address == null) {
    throw new Error(`the node ${info.peerId} listens on no address (see "listen" in its config.json)`)
  }
  return address.includes('/p2p/') ? address : `${address}/p2p/${info.peerId}`
}

function noArguments (command: string, positionals: string[]): void {
  if (positionals.length > 0) {
    throw new UsageError(`"${command}" takes no arguments, not "${positionals.join(' ')}"`)
  }
}

function peerRows (peers: PeerEntry[]): string[][] {
  return [['PEER', 'CONNECTED', 'ADDRESSES'], ...peers.map(p => [p.id, p.connected ? 'yes' : 'no', p.addrs.join(' ')])]
}

export const peersCommand: Command = {
  name: 'peers',
  summary: 'list known peers, or find peers offering a service',
  usage: 'opencloud-node peers [find <service>] [--timeout MS]',
  help: `"peers" lists the peers the running node knows, connected ones first.
"peers find <service>" asks the DHT which peers offer a service, e.g.
  opencloud-node peers find sha256

Options:
  --timeout MS  how long "find" searches the DHT (default 15000)`,
  options: { timeout: { type: 'string' } },
  run: async ({ values, positionals, json, dataDir, out }) => {
    const find = positionals[0] === 'find' && positionals.length === 2
    if (positionals.length > 0 && !find) {
      throw new UsageError('usage: opencloud-node peers [find <service>]')
    }
    const timeout = values.timeout == null ? 15_000 : Number(values.timeout)
    if (!Number.isSafeInteger(timeout) || timeout <= 0) {
      throw new UsageError(`--timeout takes a number of milliseconds, not "${String(values.timeout)}"`)
    }
    const api = await connectApi(dataDir, values.api)
    const peers = find
      ? await api.get<PeerEntry[]>(`/v1/peers/find?service=${encodeURIComponent(positionals[1])}&timeout=${timeout}`)
      : await api.get<PeerEntry[]>('/v1/peers')
    if (json) {
      printJson(out, peers)
      return
    }
    if (peers.length === 0) {
      const alone = !(await api.get<PeerEntry[]>('/v1/peers')).some(p => p.connected)
      out.write(positionals.length === 0 ? 'no known peers\n' : `no peer offers ${positionals[1]} yet\n`)
      if (alone) {
        out.write(`this node is connected to no peers: start it again with ${hintLine(values, ['--bootstrap', '<multiaddr of a peer>'])}, or try a local testnet (npm run testnet)\n`)
      }
      return
    }
    out.write(table(peerRows(peers)))
  }
}

export const servicesCommand: Command = {
  name: 'services',
  summary: 'list the services this node runs',
  usage: 'opencloud-node services',
  help: 'Lists the services the running node offers, with their methods. To see a\nremote peer\'s methods and prices: opencloud-node call <peer> <service>.methods',
  options: {},
  run: async ({ values, positionals, json, dataDir, out }) => {
    noArguments('services', positionals)
    const api = await connectApi(dataDir, values.api)
    const services = await api.get<Array<{ name: string, version: string, description: string, methods: string[] }>>('/v1/services')
    if (json) {
      printJson(out, services)
      return
    }
    out.write(table([['SERVICE', 'VERSION', 'METHODS', 'DESCRIPTION'], ...services.map(s => [s.name, s.version, s.methods.join(','), s.description])]))
  }
}
