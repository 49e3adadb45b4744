import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { simulateDurability } from '../../src/storage/durability.ts'

describe('sim:durability', () => {
  it('loses nothing and repairs nothing where no host leaves or cheats', () => {
    const r = simulateDurability({ objects: 500, churnPerMonth: 0, cheaters: 0 })
    assert.deepEqual([r.lost, r.repairsPerObjectYear, r.trafficPerYear], [0, 0, 0])
  })

  it('gives the same figures for the same seed', () => {
    assert.deepEqual(simulateDurability({ objects: 300, seed: 7 }), simulateDurability({ objects: 300, seed: 7 }))
  })

  it('trades traffic for safety: repairing late loses more objects and moves fewer bytes', () => {
    const harsh = { objects: 3000, k: 4, n: 8, churnPerMonth: 0.4, cheaters: 0.3 }
    const early = simulateDurability({ ...harsh, repairAfterLost: 1 })
    const late = simulateDurability({ ...harsh, repairAfterLost: 4 })
    assert.ok(late.lost > early.lost, `late ${late.lost} lost, early ${early.lost}`)
    assert.ok(early.trafficPerYear > late.trafficPerYear, `early ${early.trafficPerYear}, late ${late.trafficPerYear}`)
    // slow audits leave losses unnoticed longer
    const slow = simulateDurability({ ...harsh, repairAfterLost: 2, auditHours: 24 * 30 })
    const fast = simulateDurability({ ...harsh, repairAfterLost: 2, auditHours: 1 })
    assert.ok(slow.lost > fast.lost, `slow audits ${slow.lost} lost, fast ${fast.lost}`)
  })

  it('loses an object without redundancy as soon as one host goes', () => {
    const r = simulateDurability({ objects: 1000, k: 1, n: 1, churnPerMonth: 0.1, cheaters: 0 })
    // P(a host leaves within a year) = 1 - 0.9^12.17, about 72%
    assert.ok(r.lost > 650 && r.lost < 790, `${r.lost} of 1000 lost`)
  })
})
