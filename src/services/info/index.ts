import { Units } from '../../protocols/units.ts'
import type { Service } from '../interface.ts'
import type { NodeInfo, ServiceModuleDefinition } from '../module.ts'

export type { NodeInfo } from '../module.ts'

export const INFO_SERVICE = 'info'

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

/**
 * The info module: the `info` service, and the control API's view of the
 * node itself (its id, the services it runs, the daemon's process)
 */
export const infoModule: ServiceModuleDefinition = {
  name: INFO_SERVICE,
  create: ({ nodeInfo, registry }) => ({
    services: [infoService({ nodeInfo })],
    routes: {
      'GET /v1/id': async ({ json }) => { json(200, nodeInfo()) },
      'GET /v1/services': async ({ json }) => {
        json(200, registry.list().map(s => ({ name: s.name, version: s.version, description: s.description, methods: registry.methodNames(s) })))
      },
      'GET /v1/process': async ({ json }) => {
        // for operators (and tests) watching the daemon's memory: bytes
        const { rss, heapTotal, heapUsed, external, arrayBuffers } = process.memoryUsage()
        json(200, { pid: process.pid, uptimeSeconds: Math.round(process.uptime()), memory: { rss, heapTotal, heapUsed, external, arrayBuffers } })
      }
    }
  })
}
