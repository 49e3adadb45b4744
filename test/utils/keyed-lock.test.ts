import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { KeyedLock } from '../../src/utils/keyed-lock.ts'

/** A promise and the functions that settle it */
function gate (): { promise: Promise<void>, open: () => void, fail: (err: Error) => void } {
  let open!: () => void
  let fail!: (err: Error) => void
  const promise = new Promise<void>((resolve, reject) => { open = resolve; fail = reject })
  return { promise, open, fail }
}

/** Let every pending callback run */
const settle = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }

describe('KeyedLock', () => {
  it('runs the callers of one key one at a time, in order, and other keys alongside', async () => {
    const lock = new KeyedLock()
    const order: string[] = []
    const first = gate()
    const a1 = lock.run('a', async () => { order.push('a1 start'); await first.promise; order.push('a1 end') })
    const a2 = lock.run('a', async () => { order.push('a2') })
    const b1 = lock.run('b', async () => { order.push('b1') })
    await b1
    await settle()
    assert.deepEqual(order, ['a1 start', 'b1'], 'b runs while a is held; a2 waits')
    first.open()
    await Promise.all([a1, a2])
    assert.deepEqual(order, ['a1 start', 'b1', 'a1 end', 'a2'])
  })

  it('lets the next caller run after a holder that threw, and hands back what each returned or threw', { timeout: 10_000 }, async () => {
    const lock = new KeyedLock()
    const failing = lock.run('k', async () => { throw new Error('boom') })
    const next = lock.run('k', async () => 42)
    await assert.rejects(failing, /boom/)
    assert.equal(await next, 42)
  })

  it('stops a waiter at its signal without running it, and keeps those after it behind the holder', { timeout: 10_000 }, async () => {
    const lock = new KeyedLock()
    const holder = gate()
    const ran: string[] = []
    const held = lock.run('k', async () => { ran.push('holder'); await holder.promise })
    const controller = new AbortController()
    const impatient = lock.run('k', async () => { ran.push('impatient') }, { signal: controller.signal })
    const patient = lock.run('k', async () => { ran.push('patient') })
    controller.abort(new Error('the caller went away'))
    await assert.rejects(impatient, /the caller went away/)
    // a newcomer after the impatient one gave up and left the end of the line
    const late = lock.run('k', async () => { ran.push('late') })
    await settle()
    assert.deepEqual(ran, ['holder'], 'nobody passes the holder')
    assert.ok(lock.held('k'))
    holder.open()
    await Promise.all([held, patient, late])
    assert.deepEqual(ran, ['holder', 'patient', 'late'])
    await assert.rejects(lock.run('k', async () => { ran.push('never') }, { signal: AbortSignal.abort(new Error('aborted before')) }), /aborted before/)
    assert.equal(ran.at(-1), 'late')
  })

  it('forgets a key once nobody holds or waits for it', async () => {
    const lock = new KeyedLock()
    const holder = gate()
    const controller = new AbortController()
    const held = lock.run('k', async () => holder.promise)
    const waiting = lock.run('k', async () => {}, { signal: controller.signal })
    controller.abort(new Error('gave up'))
    await assert.rejects(waiting)
    await settle()
    assert.ok(lock.held('k'), 'still held while its holder runs')
    holder.open()
    await held
    await settle()
    assert.equal(lock.held('k'), false)
  })
})
