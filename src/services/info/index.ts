import { Units } from '../../protocols/units.ts'
import type { Service } from '../interface.ts'

export const INFO_SERVICE = 'info'

export interface NodeInfo {
  peerId: string
  version: string
  protocol: string
  addresses: string[]
  services: string[]
  startedAt: string
}

export interface InfoServiceComponents {
  nodeInfo: () => NodeInfo
}

/** Core service: basic information about this node (seed: "Core services") */
export function infoService (components: InfoServiceComponents): Service {
  return {
    name: INFO_SERVICE,
    version: '1.0.0',
    description: 'basic information about this node',
    methods: {
      node: {
        description: 'PeerId, software version, addresses and services of this node',
        unit: Units.CALL,
        handle: async () => ({ json: components.nodeInfo() })
      }
    }
  }
}
