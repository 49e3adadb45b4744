/**
 * How bitcoin reads a lock time (nLockTime and OP_CHECKLOCKTIMEVERIFY's
 * argument alike): below 500,000,000 a block height, from there on a unix
 * time in seconds. The chain's finality rule and the script interpreter's
 * CLTV both read it, and say it in their errors the same way.
 */

export const LOCKTIME_THRESHOLD = 500_000_000

/** An input's nSequence that makes it final: with every input final, the lock time is not enforced */
export const SEQUENCE_FINAL = 0xffffffff

export const isHeight = (lockTime: number): boolean => lockTime < LOCKTIME_THRESHOLD

/** "block 123" or "2026-03-01T12:00:00Z" */
export function lockTimeText (lockTime: number): string {
  return isHeight(lockTime) ? `block ${lockTime}` : new Date(lockTime * 1000).toISOString().replace('.000Z', 'Z')
}
