import { createHash } from 'node:crypto'
import { crypto as btcCrypto, script as btcScript, Transaction } from 'bitcoinjs-lib'
import { InvalidSignatureError, LockTimeError, NonStandardError, ScriptFailedError } from '../errors.ts'
import { isHeight, lockTimeText, SEQUENCE_FINAL } from './lock-time.ts'
import { checkSignature } from './signature-check.ts'

/**
 * A small, strict interpreter of segwit v0 witness scripts (P2WSH), enough
 * for the standard scripts of payment channels and hash locks, so the
 * regtest chain checks such spends for real instead of trusting them.
 *
 * It runs: data pushes (OP_0, 0x01-0x4b, OP_PUSHDATA1/2), OP_1NEGATE,
 * OP_1..OP_16, OP_IF, OP_NOTIF, OP_ELSE, OP_ENDIF, OP_VERIFY, OP_DROP,
 * OP_DUP, OP_EQUAL, OP_EQUALVERIFY, OP_SHA256, OP_HASH160, OP_CHECKSIG,
 * OP_CHECKSIGVERIFY and OP_CHECKLOCKTIMEVERIFY (BIP65). Any other opcode, in
 * a branch taken or not, refuses the script before it runs: a script this
 * chain cannot judge is refused, never waved through.
 *
 * Where bitcoind has a relay policy for witness scripts, it is applied as a
 * rule: MINIMALDATA (every push the shortest way), MINIMALIF (an OP_IF
 * argument is empty or 0x01), NULLFAIL (a signature that does not verify
 * fails the script; only an empty one is a plain false), compressed public
 * keys, CLEANSTACK (exactly one true item at the end), and the P2WSH size
 * limits. A wallet whose spends pass here makes spends bitcoind relays.
 */

export interface WitnessScriptSpend {
  /** the spending transaction */
  tx: Transaction
  /** which of its inputs spends the P2WSH output */
  index: number
  /** the script whose sha256 the output commits to (the witness's last item) */
  witnessScript: Uint8Array
  /** the witness items before the script, bottom of the stack first */
  stack: Uint8Array[]
  /** satoshis of the output spent, which the BIP143 sighash commits to */
  value: bigint
}

const OPS = btcScript.OPS

/** bitcoind's standardness limits for P2WSH spends (policy.h) */
const MAX_WITNESS_SCRIPT_SIZE = 3600
const MAX_WITNESS_STACK_ITEMS = 100
const MAX_WITNESS_STACK_ITEM_SIZE = 80
/** consensus: the stack never holds more than this */
const MAX_STACK_SIZE = 1000

const TRUE = Uint8Array.of(1)
const FALSE = new Uint8Array(0)

const SUPPORTED = new Set<number>([
  OPS.OP_1NEGATE,
  ...Array.from({ length: 16 }, (_, n) => OPS.OP_1 + n),
  OPS.OP_IF, OPS.OP_NOTIF, OPS.OP_ELSE, OPS.OP_ENDIF, OPS.OP_VERIFY,
  OPS.OP_DROP, OPS.OP_DUP, OPS.OP_EQUAL, OPS.OP_EQUALVERIFY,
  OPS.OP_SHA256, OPS.OP_HASH160,
  OPS.OP_CHECKSIG, OPS.OP_CHECKSIGVERIFY, OPS.OP_CHECKLOCKTIMEVERIFY
])

/** The opcode's name: the first bitcoinjs gives it (OP_CHECKLOCKTIMEVERIFY, not OP_NOP2) */
function opName (code: number): string {
  return Object.entries(OPS).find(([key, value]) => value === code && key.startsWith('OP_'))?.[0] ?? `opcode 0x${code.toString(16).padStart(2, '0')}`
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')

/** Script truth: any non-zero byte, except a lone sign bit at the end (negative zero) */
function truthy (item: Uint8Array): boolean {
  for (let i = 0; i < item.length; i++) {
    if (item[i] !== 0) {
      return !(i === item.length - 1 && item[i] === 0x80)
    }
  }
  return false
}

/** Whether `data` is pushed the shortest way, as MINIMALDATA asks */
function isMinimalPush (code: number, data: Uint8Array): boolean {
  if (data.length === 0) {
    return code === OPS.OP_0
  }
  if (data.length === 1 && ((data[0] >= 1 && data[0] <= 16) || data[0] === 0x81)) {
    return false // OP_1..OP_16 or OP_1NEGATE say it in one byte
  }
  if (data.length <= 75) {
    return code === data.length
  }
  return code === (data.length <= 255 ? OPS.OP_PUSHDATA1 : OPS.OP_PUSHDATA2)
}

interface Op {
  code: number
  /** set for pushes */
  data?: Uint8Array
}

/** The script as opcodes; refuses what the interpreter does not run before anything runs */
function parse (script: Uint8Array, where: string): Op[] {
  const ops: Op[] = []
  let i = 0
  while (i < script.length) {
    const code = script[i++]
    if (code > OPS.OP_PUSHDATA2 && !SUPPORTED.has(code)) {
      throw new NonStandardError(`${where}: the witness script uses ${opName(code)} (byte 0x${code.toString(16).padStart(2, '0')} at ${i - 1}), which this chain's script interpreter does not run`)
    }
    if (code > OPS.OP_PUSHDATA2) {
      ops.push({ code })
      continue
    }
    let length = code
    if (code === OPS.OP_PUSHDATA1 || code === OPS.OP_PUSHDATA2) {
      const size = code === OPS.OP_PUSHDATA1 ? 1 : 2
      if (i + size > script.length) {
        throw new ScriptFailedError(`${where}: the witness script ends inside ${opName(code)}'s length`)
      }
      length = size === 1 ? script[i] : script[i] | (script[i + 1] << 8)
      i += size
    }
    if (i + length > script.length) {
      throw new ScriptFailedError(`${where}: the witness script ends inside a push of ${length} bytes`)
    }
    const data = script.subarray(i, i + length)
    i += length
    if (!isMinimalPush(code, data)) {
      throw new NonStandardError(`${where}: the witness script pushes ${length} bytes with ${opName(code)}, not the shortest way (MINIMALDATA)`)
    }
    ops.push({ code, data })
  }
  return ops
}

/**
 * Run a P2WSH input's witness script over the rest of its witness. Returns
 * when the spend is valid; throws InvalidSignatureError for a signature
 * that fails, LockTimeError for a CHECKLOCKTIMEVERIFY that fails,
 * NonStandardError for what the chain does not run, and ScriptFailedError
 * for every other failure.
 */
export function runWitnessScript (spend: WitnessScriptSpend): void {
  const { tx, index, witnessScript, value } = spend
  const where = `input ${index}`
  if (witnessScript.length > MAX_WITNESS_SCRIPT_SIZE) {
    throw new NonStandardError(`${where}: the witness script of ${witnessScript.length} bytes is above the standard ${MAX_WITNESS_SCRIPT_SIZE}`)
  }
  if (spend.stack.length > MAX_WITNESS_STACK_ITEMS) {
    throw new NonStandardError(`${where}: the witness has ${spend.stack.length} items before its script, above the standard ${MAX_WITNESS_STACK_ITEMS}`)
  }
  spend.stack.forEach((item, n) => {
    if (item.length > MAX_WITNESS_STACK_ITEM_SIZE) {
      throw new NonStandardError(`${where}: witness item ${n} of ${item.length} bytes is above the standard ${MAX_WITNESS_STACK_ITEM_SIZE}`)
    }
  })
  const ops = parse(witnessScript, where)
  const stack = [...spend.stack]
  /** one entry per open OP_IF: whether its current branch runs */
  const branches: boolean[] = []

  const fail = (op: Op, what: string): ScriptFailedError => new ScriptFailedError(`${where}: the witness script failed at ${opName(op.code)}: ${what}`)
  const pop = (op: Op): Uint8Array => {
    const item = stack.pop()
    if (item == null) {
      throw fail(op, 'the stack is empty')
    }
    return item
  }

  for (const op of ops) {
    const running = !branches.includes(false)
    switch (op.code) {
      case OPS.OP_IF:
      case OPS.OP_NOTIF: {
        let taken = false
        if (running) {
          const argument = pop(op)
          // MINIMALIF: otherwise a third party could swap 0x01 for 0x02 and change the txid
          if (!(argument.length === 0 || (argument.length === 1 && argument[0] === 1))) {
            throw fail(op, `its argument must be empty or 0x01 (MINIMALIF), not 0x${hex(argument)}`)
          }
          taken = (argument.length === 1) === (op.code === OPS.OP_IF)
        }
        branches.push(taken)
        continue
      }
      case OPS.OP_ELSE:
        if (branches.length === 0) {
          throw fail(op, 'there is no OP_IF to go with it')
        }
        branches[branches.length - 1] = !branches[branches.length - 1]
        continue
      case OPS.OP_ENDIF:
        if (branches.length === 0) {
          throw fail(op, 'there is no OP_IF to go with it')
        }
        branches.pop()
        continue
    }
    if (!running) {
      continue
    }
    if (op.data != null) {
      stack.push(op.data)
    } else if (op.code === OPS.OP_1NEGATE) {
      stack.push(Uint8Array.of(0x81))
    } else if (op.code >= OPS.OP_1 && op.code <= OPS.OP_16) {
      stack.push(Uint8Array.of(op.code - OPS.OP_1 + 1))
    } else {
      switch (op.code) {
        case OPS.OP_VERIFY:
          if (!truthy(pop(op))) {
            throw fail(op, 'the item on top of the stack is false')
          }
          break
        case OPS.OP_DROP:
          pop(op)
          break
        case OPS.OP_DUP: {
          const item = pop(op)
          stack.push(item, item)
          break
        }
        case OPS.OP_EQUAL:
        case OPS.OP_EQUALVERIFY: {
          const equal = Buffer.from(pop(op)).equals(Buffer.from(pop(op)))
          if (op.code === OPS.OP_EQUAL) {
            stack.push(equal ? TRUE : FALSE)
          } else if (!equal) {
            throw fail(op, 'the two items on top of the stack differ')
          }
          break
        }
        case OPS.OP_SHA256:
          stack.push(createHash('sha256').update(pop(op)).digest())
          break
        case OPS.OP_HASH160:
          stack.push(btcCrypto.hash160(pop(op)))
          break
        case OPS.OP_CHECKSIG:
        case OPS.OP_CHECKSIGVERIFY: {
          const publicKey = pop(op)
          const signature = pop(op)
          const label = `${where}, ${opName(op.code)} with key ${hex(publicKey).slice(0, 16)}…`
          if (publicKey.length !== 33 || (publicKey[0] !== 0x02 && publicKey[0] !== 0x03)) {
            throw new NonStandardError(`${label}: a segwit script's public key must be compressed (33 bytes starting 02 or 03)`)
          }
          // NULLFAIL: a signature is empty (false) or valid; a wrong one fails here
          if (signature.length > 0) {
            checkSignature({ signature, publicKey, sighash: () => tx.hashForWitnessV0(index, witnessScript, value, Transaction.SIGHASH_ALL), label })
          }
          if (op.code === OPS.OP_CHECKSIG) {
            stack.push(signature.length > 0 ? TRUE : FALSE)
          } else if (signature.length === 0) {
            throw new InvalidSignatureError(`${label}: the signature is empty`)
          }
          break
        }
        case OPS.OP_CHECKLOCKTIMEVERIFY:
          checkLockTime(tx, index, stack.at(-1), where)
          break
        default:
          // parse() let through only what is handled above
          throw new NonStandardError(`${where}: ${opName(op.code)} is not run`)
      }
    }
    if (stack.length > MAX_STACK_SIZE) {
      throw fail(op, `the stack holds more than ${MAX_STACK_SIZE} items`)
    }
  }
  if (branches.length > 0) {
    throw new ScriptFailedError(`${where}: the witness script failed: ${branches.length} OP_IF without OP_ENDIF`)
  }
  // CLEANSTACK: one true item, so no one can add witness items to a valid spend
  if (stack.length !== 1) {
    throw new ScriptFailedError(`${where}: the witness script failed: it ended with ${stack.length} items on the stack, not exactly one (CLEANSTACK)`)
  }
  if (!truthy(stack[0])) {
    throw new ScriptFailedError(`${where}: the witness script failed: it ended with false`)
  }
}

/** BIP65: the item on top of the stack is a lock time the transaction's own must reach; it stays on the stack */
function checkLockTime (tx: Transaction, index: number, top: Uint8Array | undefined, where: string): void {
  const op = 'OP_CHECKLOCKTIMEVERIFY'
  if (top == null) {
    throw new LockTimeError(`${where}: ${op} found the stack empty`)
  }
  let lockTime: number
  try {
    // five bytes: a lock time is an unsigned 32-bit number, which a 4-byte script number cannot hold
    lockTime = btcScript.number.decode(top, 5, true)
  } catch (err: any) {
    throw new LockTimeError(`${where}: ${op}'s argument 0x${hex(top)} is not a minimal script number of at most 5 bytes (${err.message})`)
  }
  if (lockTime < 0) {
    throw new LockTimeError(`${where}: ${op}'s argument ${lockTime} is negative`)
  }
  if (isHeight(lockTime) !== isHeight(tx.locktime)) {
    throw new LockTimeError(`${where}: the output is locked until ${lockTimeText(lockTime)}, but the transaction's lock time ${tx.locktime} is a ${isHeight(tx.locktime) ? 'block height' : 'time'}`)
  }
  if (lockTime > tx.locktime) {
    throw new LockTimeError(`${where}: the output cannot be spent before ${lockTimeText(lockTime)}; the transaction's lock time is ${isHeight(tx.locktime) ? tx.locktime : lockTimeText(tx.locktime)}`)
  }
  // a final input turns nLockTime off for the whole transaction, and with it this check
  if (tx.ins[index].sequence === SEQUENCE_FINAL) {
    throw new LockTimeError(`${where}: the input's nSequence is 0xffffffff, which turns the lock time off; use 0xfffffffe`)
  }
}
