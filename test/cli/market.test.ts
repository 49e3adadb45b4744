import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { byMethod } from '../../src/cli/commands/market.ts'

describe('market prices table', () => {
  it('groups the offers by method, keeping the API\'s cheapest-first order within each', () => {
    const offer = (method: string, provider: string): { service: string, method: string, provider: string } => ({ service: 'storage', method, provider })
    // the API's order: cheapest first across methods
    const offers = [offer('put', 'a'), offer('rent', 'b'), offer('get', 'c'), offer('rent', 'a'), offer('get', 'b'), offer('put', 'c')]
    assert.deepEqual(byMethod(offers).map(o => `${o.method} ${o.provider}`), ['get c', 'get b', 'put a', 'put c', 'rent b', 'rent a'])
  })
})
