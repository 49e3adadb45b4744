import { createHash } from 'node:crypto'
import { Units } from '../../market/units.ts'
import type { Service } from '../interface.ts'

export const SHA256_SERVICE = 'sha256'
const MIB = 1024 * 1024

export interface Sha256ServiceInit {
  /** satoshis per MiB hashed, default 0 (free) */
  price?: bigint
}

/**
 * The first application service: `hash` answers the 32-byte SHA-256 of the
 * request body. The body streams through the hash, so a 100 MiB body costs
 * the server a few frames of memory.
 */
export function sha256Service (init: Sha256ServiceInit = {}): Service {
  return {
    name: SHA256_SERVICE,
    version: '1.0.0',
    description: 'SHA-256 of the request body',
    methods: {
      hash: {
        description: 'the SHA-256 digest of the body, as 32 raw bytes',
        unit: Units.MIB,
        units: ({ bodyLength }) => Math.max(1, Math.ceil(bodyLength / MIB)),
        price: init.price ?? 0n,
        handle: async ({ body, signal }) => {
          const hash = createHash('sha256')
          for await (const chunk of body) {
            signal.throwIfAborted()
            hash.update(chunk)
          }
          return { body: Uint8Array.from(hash.digest()) }
        }
      }
    }
  }
}
