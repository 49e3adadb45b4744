import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readAhead } from '../../src/utils/read-ahead.ts'

const tick = async (ms = 1): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

async function * numbers (count: number, failAt?: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < count; i++) {
    if (i === failAt) {
      throw new Error(`the source failed at ${i}`)
    }
    await tick()
    yield new Uint8Array([i])
  }
}

describe('readAhead: a stream read ahead of its reader', () => {
  it('gives every byte in order', async () => {
    const got: number[] = []
    for await (const piece of readAhead(numbers(50), 4)) {
      got.push(piece[0])
    }
    assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => i))
  })

  it('reads ahead while the reader is busy, but no further than its high-water mark', async () => {
    let pulled = 0
    async function * counting (): AsyncGenerator<Uint8Array> {
      for (;;) {
        pulled++
        yield new Uint8Array(10)
      }
    }
    const reader = readAhead(counting(), 100)
    await reader.next()
    // the reader is busy: the source is pulled meanwhile, up to 100 bytes (ten pieces) beyond what was taken
    await tick(20)
    assert.ok(pulled >= 5, `pulled ahead: ${pulled}`)
    assert.ok(pulled <= 12, `no further than the high-water mark: ${pulled}`)
    await reader.return(undefined)
  })

  it('throws the source\'s error after the bytes that came before it', async () => {
    const got: number[] = []
    await assert.rejects((async () => {
      for await (const piece of readAhead(numbers(50, 30), 4)) {
        got.push(piece[0])
      }
    })(), /the source failed at 30/)
    assert.equal(got.length, 30)
  })

  it('stops its source when the reader stops early', async () => {
    let finished = false
    async function * endless (): AsyncGenerator<Uint8Array> {
      try {
        for (;;) {
          await tick()
          yield new Uint8Array(1)
        }
      } finally {
        finished = true
      }
    }
    for await (const _piece of readAhead(endless(), 4)) {
      break
    }
    await tick(20)
    assert.equal(finished, true)
  })
})
