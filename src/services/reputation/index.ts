import { BadRequestError } from '../../protocols/rpc/errors.ts'
import { Units } from '../../protocols/units.ts'
import type { Reputation } from '../../reputation/reputation.ts'
import type { Service } from '../interface.ts'

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
