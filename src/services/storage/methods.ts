import { Units } from '../../protocols/units.ts'
import { STORAGE } from '../../storage/constants.ts'
import { ARGS, type StorageMethod } from '../../storage/host/args.ts'
import type { StorageHost } from '../../storage/host/storage-host.ts'
import type { MethodSpec, Service } from '../interface.ts'

/** the service's name on the wire, the one the client calls */
export const STORAGE_SERVICE = STORAGE

/**
 * The `storage` RPC service: each method of the storage protocol
 * (PROTOCOL.md 8d) with its description, unit and agreement check, answered
 * by the host's handler of it. A ServiceContext is a HostRequest as it is
 * (caller, args, body, signal), and a CostQuery the host's HostQuery.
 */
export function storageService (host: StorageHost): Service {
  /** every method's agreement check runs before payment; priced ones answer their price */
  const spec = (method: StorageMethod, description: string, unit: MethodSpec['unit'], handle: MethodSpec['handle'], extra: Partial<MethodSpec> = {}): MethodSpec => ({
    description,
    ...(ARGS[method].usage === '' ? {} : { args: ARGS[method].usage }),
    unit,
    cost: (query) => host.cost(method, query),
    handle,
    ...extra
  })
  return {
    name: STORAGE_SERVICE,
    version: '1.0.0',
    description: 'paid storage of encrypted shards under signed contracts',
    start: async () => host.start(),
    stop: async () => host.stop(),
    methods: {
      contract: spec('contract', 'propose contract terms (body: bytes terms || bytes renter signature); answers the host signature', Units.CALL,
        async (ctx) => ({ json: await host.contract(ctx) })),
      renew: spec('renew', 'renew a contract (body as for contract): its shards pass to the new one at revision 1, and it ends', Units.CALL,
        async (ctx) => ({ json: await host.renew(ctx) })),
      rent: spec('rent', 'pay rent for the next periods of a contract', Units.TIB_MONTH,
        async (ctx) => ({ json: await host.rent(ctx) }), { advertise: true }),
      put: spec('put', 'store the body as a shard under its Merkle root; answers the host signature of the next revision', Units.TIB,
        async (ctx) => ({ json: await host.put(ctx) })),
      get: spec('get', 'a byte range of a shard', Units.TIB,
        async (ctx) => ({ body: await host.get(ctx) })),
      prove: spec('prove', 'Merkle proofs of the leaves a challenge picks (the audit primitive)', Units.CALL,
        async (ctx) => ({ body: await host.prove(ctx) })),
      delete: spec('delete', 'delete a shard; answers the host signature of the next revision', Units.CALL,
        async (ctx) => ({ json: await host.delete(ctx) })),
      list: spec('list', 'the contract, its latest signed revision, its shards and the rent paid', Units.CALL,
        async (ctx) => ({ json: await host.list(ctx) })),
      end: spec('end', 'end a contract early: its shards are deleted (body: the renter\'s signed rating of the host, optional; answers the host\'s of the renter)', Units.CALL,
        async (ctx) => ({ json: await host.end(ctx) })),
      // shares (PROTOCOL.md 8h): the holder pays its own downloads, at the renter's contract's get price
      'shared-get': spec('shared-get', 'a byte range of a shard, for the holder of a share signed by its renter (body: bytes grant || bytes signature); paid by the caller', Units.TIB,
        async (ctx) => ({ body: await host.sharedGet(ctx) })),
      unshare: spec('unshare', 'revoke one of the caller\'s shares before its expiry: every shared-get of it is refused', Units.CALL,
        async (ctx) => ({ json: await host.unshare(ctx) })),
      // the object index (PROTOCOL.md 8g): free, as list
      'note-put': spec('note-put', 'keep a sealed note of the caller\'s object index under its id (body: the note, at most 256 KiB); only for renters with a live contract here', Units.CALL,
        async (ctx) => ({ json: await host.notePut(ctx) })),
      'note-list': spec('note-list', 'the caller\'s notes in id order after the one named, base64, about 1 MiB per answer (more: true to ask again)', Units.CALL,
        async (ctx) => ({ json: await host.noteList(ctx) })),
      'note-delete': spec('note-delete', 'forget a note of the caller\'s', Units.CALL,
        async (ctx) => ({ json: await host.noteDelete(ctx) })),
      contracts: spec('contracts', 'the caller\'s contracts whose shards this host holds: id, start, end, ended', Units.CALL,
        async (ctx) => ({ json: await host.contracts(ctx) }))
    }
  }
}
