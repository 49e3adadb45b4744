import { Units } from '../../protocols/units.ts'
import { serviceSettings, type ConfigSection, type ServiceSettings } from '../config-section.ts'
import type { Service } from '../interface.ts'
import type { ServiceModuleDefinition } from '../module.ts'

export const SHA256_SERVICE = 'sha256'
const MIB = 1024 * 1024

export interface Sha256ServiceInit {
  /** satoshis per MiB hashed, default 0 (free) */
  price?: bigint
}

/**
 * The first application service: `hash` answers the 32-byte SHA-256 of the
 * request body. The body streams through, so a 100 MiB body costs the server
 * a few frames of memory.
 *
 * The RPC layer checks every body byte against the SHA-256 the caller signed
 * and fails the read on a mismatch, so once the body has been read that
 * digest is the answer; hashing a second time would double the server's work.
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
          for await (const _chunk of body) {
            signal.throwIfAborted()
          }
          return { body: Uint8Array.from(body.sha256) }
        }
      }
    }
  }
}

/** services.sha256: on by default, and free */
export const sha256Settings: ConfigSection<ServiceSettings> = {
  key: `services.${SHA256_SERVICE}`,
  defaults: { enabled: true, prices: { hash: 0 } },
  validate: (raw, path) => serviceSettings(raw, path, sha256Settings.defaults)
}

/** The sha256 module: the first application service, which config.json may switch off */
export const sha256Module: ServiceModuleDefinition = {
  name: SHA256_SERVICE,
  config: [sha256Settings],
  create: ({ section }) => ({ services: section(sha256Settings).enabled === false ? [] : [sha256Service()] })
}
