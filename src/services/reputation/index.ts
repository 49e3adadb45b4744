import { AccessDeniedError, BadRequestError } from '../../protocols/rpc/errors.ts'
import { peerParam } from '../../utils/http-body.ts'
import { Units } from '../../protocols/units.ts'
import type { Reputation } from '../../reputation/reputation.ts'
import type { Service } from '../interface.ts'
import type { ServiceModuleDefinition } from '../module.ts'

export const REPUTATION_SERVICE = 'reputation'

export interface ReputationServiceComponents {
  reputation: Reputation
}

/** Core service: this node's opinions of others (seed: "repuation: share my reputation data") */
export function reputationService (components: ReputationServiceComponents): Service {
  const { reputation } = components
  return {
    name: REPUTATION_SERVICE,
    version: '1.0.0',
    description: 'this node\'s opinions of other peers, and the trust it derives from everyone\'s',
    methods: {
      opinions: {
        description: 'this node\'s signed summary of its local trust (the same a node gossips)',
        unit: Units.CALL,
        handle: async () => ({ body: await reputation.ownSummary() })
      },
      show: {
        description: 'trust of one peer from this node\'s point of view',
        args: '<peer>',
        unit: Units.CALL,
        handle: async ({ args }) => {
          if (args[0] == null || !/^[1-9A-HJ-NP-Za-km-z]{40,64}$/.test(args[0])) {
            throw new BadRequestError('show takes a PeerId')
          }
          return { json: await reputation.view(args[0]) }
        }
      }
    }
  }
}

/**
 * The reputation module: the `reputation` service, the control API's trust
 * routes, and the pipeline's reputation step (the min-trust policy)
 */
export const reputationModule: ServiceModuleDefinition = {
  name: REPUTATION_SERVICE,
  create: ({ reputation }) => ({
    services: [reputationService({ reputation })],
    checks: {
      reputation: {
        check: async (ctx, policy) => {
          if (policy.minTrust > 0) {
            const { score } = await reputation.view(ctx.caller)
            if (score < policy.minTrust) {
              throw new AccessDeniedError(`this node serves callers with a trust score of at least ${policy.minTrust}; yours is ${score.toFixed(2)}`)
            }
          }
        }
      }
    },
    routes: {
      'GET /v1/reputation': async ({ url, json }) => {
        const peer = peerParam(url, false)
        json(200, peer == null ? await reputation.views() : await reputation.view(peer))
      },
      'GET /v1/reputation/records': async ({ url, json }) => {
        json(200, await reputation.store.records(peerParam(url, true)))
      }
    }
  })
}
