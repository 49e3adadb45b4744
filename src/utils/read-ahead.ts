/**
 * A byte stream read ahead of its reader, up to `highWater` bytes: the
 * source is pulled while the reader is busy with what it has, rather than
 * only when it asks. A put of a stream (an HTTP body through the S3
 * gateway) codes and sends a segment while the next one arrives, instead of
 * leaving the socket paused between segments (bench/s3: a stream-fed put
 * ran at 0.9 of a file-fed one). An error of the source is thrown to the
 * reader after the bytes that came before it; a reader that stops early
 * stops the source.
 */
export async function * readAhead (source: AsyncIterable<Uint8Array>, highWater: number): AsyncGenerator<Uint8Array> {
  const it = source[Symbol.asyncIterator]()
  const queue: Uint8Array[] = []
  let queued = 0
  let ended = false
  let failed = false
  let failure: unknown
  let stopped = false
  /** the reader, waiting for bytes */
  let wake: (() => void) | undefined
  /** the pump, waiting for room */
  let resume: (() => void) | undefined
  const pump = async (): Promise<void> => {
    try {
      while (!stopped) {
        if (queued >= highWater) {
          await new Promise<void>(resolve => { resume = resolve })
          continue
        }
        const next = await it.next()
        if (next.done === true) {
          break
        }
        queue.push(next.value)
        queued += next.value.byteLength
        wake?.()
        wake = undefined
      }
    } catch (err) {
      failed = true
      failure = err
    } finally {
      ended = true
      wake?.()
      wake = undefined
    }
  }
  const pumping = pump()
  try {
    for (;;) {
      const piece = queue.shift()
      if (piece != null) {
        queued -= piece.byteLength
        resume?.()
        resume = undefined
        yield piece
        continue
      }
      if (ended) {
        if (failed) {
          throw failure
        }
        return
      }
      await new Promise<void>(resolve => { wake = resolve })
    }
  } finally {
    stopped = true
    resume?.()
    resume = undefined
    if (ended) {
      await pumping
    } else {
      // the source is stopped; a pull still waiting on it (a stalled socket)
      // ends with it, and is not waited for here
      void Promise.resolve(it.return?.()).catch(() => {})
    }
  }
}
