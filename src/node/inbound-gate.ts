import { logger } from '@libp2p/logger'
import type { ConnectionGater, MultiaddrConnection, PeerId } from '@libp2p/interface'

const log = logger('opencloud:node:gate')

export interface InboundGateInit {
  /**
   * Inbound connections from one IP address that may be in their handshake
   * at once, default 8. libp2p bounds pending handshakes only in total (10
   * by default, held 10 s each), so ten idle sockets from one host locked
   * every new peer out; one host now holds at most this many of the total.
   */
  maxPendingPerHost?: number
}

/**
 * A connection gater that bounds the handshakes in progress per remote IP.
 * A connection counts from when it arrives until its upgrade ends, by
 * success (it is then an ordinary connection, bounded elsewhere) or by
 * closing (a failed or timed-out handshake).
 */
export function inboundGate (init: InboundGateInit = {}): ConnectionGater {
  const max = init.maxPendingPerHost ?? 8
  const pending = new Map<string, number>()
  const counted = new WeakMap<MultiaddrConnection, string>()

  const release = (maConn: MultiaddrConnection): void => {
    const host = counted.get(maConn)
    if (host == null) {
      return
    }
    counted.delete(maConn)
    const n = (pending.get(host) ?? 1) - 1
    if (n <= 0) {
      pending.delete(host)
    } else {
      pending.set(host, n)
    }
  }

  return {
    denyInboundConnection: (maConn) => {
      const host = maConn.remoteAddr.getComponents().find(c => c.name === 'ip4' || c.name === 'ip6')?.value ?? maConn.remoteAddr.toString()
      const n = pending.get(host) ?? 0
      if (n >= max) {
        log('refused a connection from %s: %d handshakes from there are in progress', host, n)
        return true
      }
      pending.set(host, n + 1)
      counted.set(maConn, host)
      maConn.addEventListener('close', () => { release(maConn) }, { once: true })
      return false
    },
    denyInboundUpgradedConnection: (_peer: PeerId, maConn) => {
      release(maConn)
      return false
    }
  }
}
