import { logger } from '@libp2p/logger'
import { parseAmount } from '../../../protocols/units.ts'
import { contractIdOf, decodeRevision, decodeSigned, decodeTerms, encodeRevision, nextRevision, verifyRevision, verifyTerms } from '../../protocol/contract.ts'
import { NOTE_CALL_MS } from '../../constants.ts'
import { IntegrityError, NoIndexFoundError } from '../../errors.ts'
import { callSignal, type StorageSession } from '../session.ts'
import { recordOf } from '../contracts.ts'
import { IndexNotes, noIndexAt, type NoteObject } from './index-notes.ts'
import type { ListAnswer } from '../../protocol/answers.ts'
import type { ContractRecord, Records, StoredObject } from '../records.ts'

const log = logger('opencloud:storage:recovery')

/** What a recovery found (StorageClient.recover) */
export interface RecoveryReport {
  /** storage hosts asked, and those that answered */
  hostsAsked: number
  hostsAnswered: number
  /** this identity's contracts found at the hosts, and how many of them this node did not know */
  contracts: number
  contractsAdded: number
  /** objects the notes name: added to the records, or known already */
  objectsAdded: number
  objectsKnown: number
  /** notes that did not open with this wallet's index key (or did not carry an object) */
  notesUnopened: number
  /** objects whose note was found but not all the parts of its record, at any host */
  objectsIncomplete: number
}

export interface RecoveryProgress {
  phase: 'hosts' | 'contracts' | 'notes' | 'import'
  done: number
  total: number
  message?: string
}

export interface RecoveryComponents {
  peerId: string
  records: Records
  session: StorageSession
  index: IndexNotes
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')

/**
 * A contract record rebuilt from a host's `list` answer: the terms signed
 * by this identity and by the host, the host's latest revision signed by
 * both and matching the shards it lists, and its rent sums. What only this
 * node counted (what it spent on transfers, its audits) starts from zero.
 */
export function contractFromList (id: string, host: string, renter: string, answer: ListAnswer): ContractRecord {
  const signedTerms = Buffer.from(answer.contract, 'base64')
  const t = decodeSigned(signedTerms)
  if (hex(contractIdOf(t.message)) !== id) {
    throw new IntegrityError(`host ${host} answered terms that are not those of contract ${id}`)
  }
  const terms = decodeTerms(t.message)
  if (terms.renter !== renter || terms.host !== host) {
    throw new IntegrityError(`contract ${id} at ${host} is between ${terms.renter} and ${terms.host}, not this node and that host`)
  }
  verifyTerms(t.message, renter, t.renterSignature)
  verifyTerms(t.message, host, t.hostSignature)
  const shards: Array<[string, number]> = answer.shards.map(s => [String(s.root), Number(s.bytes)])
  let revision = 0
  if (answer.signedRevision != null) {
    const { message, renterSignature, hostSignature } = decodeSigned(Buffer.from(answer.signedRevision, 'base64'))
    verifyRevision(message, renter, renterSignature)
    verifyRevision(message, host, hostSignature)
    const rev = decodeRevision(message)
    const expected = encodeRevision(nextRevision(Buffer.from(id, 'hex'), rev.number - 1, shards.map(([root, length]) => ({ root: Buffer.from(root, 'hex'), length }))))
    if (hex(rev.contractId) !== id || rev.number !== answer.revision || !Buffer.from(expected).equals(Buffer.from(message))) {
      throw new IntegrityError(`host ${host} answered a revision of contract ${id} that does not match the shards it lists`)
    }
    revision = rev.number
  } else if (shards.length > 0) {
    throw new IntegrityError(`host ${host} lists shards under contract ${id} without a signed revision`)
  }
  let rentPaid = 0n
  try {
    rentPaid = parseAmount(answer.rentPaid)
  } catch {}
  const rentAccrued = /^[0-9]+$/.test(String(answer.rentAccrued)) ? String(answer.rentAccrued) : '0'
  return recordOf(terms, Buffer.from(answer.contract, 'base64'), {
    version: terms.version,
    host,
    signed: answer.contract,
    rentPaidPeriods: Number(answer.rentPaidPeriods),
    rentAccrued,
    // the host's sums are this node's count from now on: it has no other
    rentCounted: rentAccrued,
    rentPaid: String(rentPaid),
    revision,
    ...(answer.signedRevision == null ? {} : { signedRevision: answer.signedRevision }),
    shards,
    // none of them put by this node, as far as it knows
    learned: shards.map(([root]) => root).sort(),
    spent: { upload: '0', download: '0', rent: String(rentPaid) }
  })
}

/**
 * Take in an object a note carries: its contracts the table's records
 * (those known), merged by id (Records.importObject); the note is recorded
 * as written at `hosts`
 */
export async function importNoteObject (records: Records, index: IndexNotes, object: NoteObject, hosts: string[]): Promise<'added' | 'known'> {
  const { contractIds, updatedAt: _updatedAt, ...rest } = object
  const contracts: Record<string, ContractRecord> = {}
  for (const id of contractIds ?? []) {
    const c = records.contracts.get(id)
    if (c != null) {
      contracts[id] = c
    }
  }
  const stored: StoredObject = { ...rest, contracts: { ...contracts, ...records.contractsUnder(rest.segments) } }
  const outcome = await records.importObject(stored)
  if (outcome === 'added') {
    await index.adopt(stored, [...new Set(hosts)].sort())
  }
  return outcome
}

/**
 * Recovery from the words alone (PROTOCOL.md 8g): ask every host for this
 * identity's contracts (`contracts`, then `list` of each) and its notes
 * (`note-list`), open the notes with the index key, and import the objects
 * (merged by id: one known already is left as it is) with the contracts
 * their shards are under. Nothing is written unless some note opened: the
 * wrong words (another identity, another index key) find nothing and leave
 * the records as they were (NoIndexFoundError).
 */
export async function recover (components: RecoveryComponents, hosts: string[], options: { signal: AbortSignal, onProgress?: (p: RecoveryProgress) => void }): Promise<RecoveryReport> {
  const { peerId, records, session, index } = components
  const { signal } = options
  const progress = options.onProgress ?? (() => {})
  await records.ready()
  const report: RecoveryReport = { hostsAsked: hosts.length, hostsAnswered: 0, contracts: 0, contractsAdded: 0, objectsAdded: 0, objectsKnown: 0, notesUnopened: 0, objectsIncomplete: 0 }
  const found = new Map<string, ContractRecord>()
  const objects = new Map<string, { object: NoteObject, hosts: Set<string> }>()
  const unopened = new Set<string>()
  const incomplete = new Set<string>()
  let done = 0
  const asked = new Set<string>()
  const ask = async (host: string): Promise<void> => {
    let answered = false
    try {
      const ids = await session.contracts(host, callSignal(signal, NOTE_CALL_MS))
      answered = true
      for (const { id } of ids) {
        if (found.has(id)) {
          continue
        }
        try {
          found.set(id, records.contracts.get(id) ?? contractFromList(id, host, peerId, await session.list(host, id, callSignal(signal, NOTE_CALL_MS))))
        } catch (err: any) {
          if (signal.aborted) {
            throw err
          }
          log('contract %s at %s cannot be taken back - %s', id, host, err.message)
        }
      }
      const notes = await index.readHost(host, signal)
      for (const { object } of notes.objects) {
        const seen = objects.get(object.id)
        // two notes of one object (a host missed a rewrite): the later one
        if (seen == null || (seen.object.updatedAt ?? 0) < (object.updatedAt ?? 0)) {
          objects.set(object.id, { object, hosts: new Set([...(seen?.hosts ?? []), host]) })
        } else {
          seen.hosts.add(host)
        }
      }
      notes.unopened.forEach(id => unopened.add(id))
      notes.incomplete.forEach(id => incomplete.add(id))
    } catch (err: any) {
      if (signal.aborted) {
        throw err
      }
      if (!noIndexAt(err)) {
        log('host %s could not be asked for the index - %s', host, err.message)
      } else {
        answered = true
      }
    } finally {
      if (answered) {
        report.hostsAnswered++
      }
      progress({ phase: 'hosts', done: ++done, total: asked.size, message: host })
    }
  }
  // the market's hosts first; then the hosts the notes name that were not
  // asked (the market may not list them all yet, and every contract an
  // object's shards are under is needed to read it)
  for (let round = [...new Set(hosts)]; round.length > 0;) {
    round.forEach(h => asked.add(h))
    await Promise.all(round.map(ask))
    signal.throwIfAborted()
    round = [...new Set([...objects.values()].flatMap(({ object }) => object.segments.flatMap(s => s.shards.map(x => x.host))))].filter(h => !asked.has(h)).sort()
  }
  report.hostsAsked = asked.size
  // a contract the notes name that no `contracts` answer listed (a host
  // without the method, or one that answered before the contract formed):
  // asked for by id
  const named = new Map<string, string>()
  for (const { object } of objects.values()) {
    for (const shard of object.segments.flatMap(s => s.shards)) {
      if (!found.has(shard.contract) && records.contracts.get(shard.contract) == null) {
        named.set(shard.contract, shard.host)
      }
    }
  }
  await Promise.all([...named].map(async ([id, host]) => {
    try {
      found.set(id, contractFromList(id, host, peerId, await session.list(host, id, callSignal(signal, NOTE_CALL_MS))))
    } catch (err: any) {
      if (!signal.aborted) {
        log('contract %s at %s, which a note names, cannot be taken back - %s', id, host, err.message)
      }
    }
  }))
  signal.throwIfAborted()
  report.contracts = found.size
  report.notesUnopened = unopened.size
  report.objectsIncomplete = [...incomplete].filter(id => !objects.has(id)).length
  if (objects.size === 0) {
    throw new NoIndexFoundError(`no index found for these words: none of the ${asked.size} storage host(s) asked (${report.hostsAnswered} answered) holds notes for ${peerId}; nothing was created. Check the words (wallet backup on the old machine prints them), or try again once the market lists more storage hosts (store recover --wait 5min)`, report.hostsAnswered)
  }
  // written in one turn of the records lock: the upkeep must never see a
  // recovered contract before the objects that name its shards
  await records.exclusive(async () => {
    // the contracts first: the objects' records name them
    for (const [id, c] of found) {
      if (records.contracts.get(id) == null) {
        records.contracts.adopt(id, c)
        await records.contracts.save(id)
        report.contractsAdded++
      }
    }
    let imported = 0
    for (const { object, hosts: at } of objects.values()) {
      if (await importNoteObject(records, index, object, [...at]) === 'added') {
        report.objectsAdded++
      } else {
        report.objectsKnown++
      }
      progress({ phase: 'import', done: ++imported, total: objects.size, message: object.name })
    }
  }, signal)
  log('recovered %d objects (%d known) and %d contracts from %d of %d hosts', report.objectsAdded, report.objectsKnown, report.contractsAdded, report.hostsAnswered, report.hostsAsked)
  return report
}
