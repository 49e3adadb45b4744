import { infoModule } from '../services/info/index.ts'
import { peersModule } from '../services/peers/index.ts'
import { paymentsModule } from '../services/payments/index.ts'
import { marketModule } from '../services/market/index.ts'
import { reputationModule } from '../services/reputation/index.ts'
import { sha256Module } from '../services/sha256/index.ts'
import { storageModule } from '../services/storage/index.ts'
import { ledgerModule } from '../services/ledger/index.ts'
import { s3Module } from '../services/s3/index.ts'
import { dashboardModule } from '../services/dashboard/index.ts'
import type { ConfigSection } from '../services/config-section.ts'
import type { ServiceModuleDefinition } from '../services/module.ts'

/**
 * The node's modules, in the order they start (and the reverse of the
 * order they stop). Adding a service to the node is one line here: its
 * module brings its RPC services, routes, payment hooks, errors and config.
 */
export const MODULES: ServiceModuleDefinition[] = [
  infoModule,
  peersModule,
  paymentsModule,
  marketModule,
  reputationModule,
  sha256Module,
  storageModule,
  ledgerModule,
  s3Module,
  dashboardModule
]

/** Every module's sections of config.json */
export const MODULE_SECTIONS: ConfigSection[] = MODULES.flatMap(m => m.config ?? [])
