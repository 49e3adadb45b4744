import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { Counter, Histogram, Registry } from 'prom-client'
import type { CallObservation } from '../protocols/rpc/observation.ts'
import type { ComponentLogger, Metrics } from '@libp2p/interface'

/**
 * Seconds buckets of the RPC latency histograms: a small call on loopback
 * answers in a millisecond or two, a shard upload over a slow link in tens
 * of seconds
 */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

/**
 * libp2p's metrics package keeps the metrics it made in one table per
 * process, which a second node in the process would clear or share. The
 * daemon is one node per process; where a process runs several (tests, an
 * embedder), only the first counts libp2p's own figures, and every node
 * still counts its own.
 */
let libp2pMetricsTaken = false

/**
 * The node's Prometheus registry (GET /metrics): libp2p's own figures
 * (connections, streams, bytes per protocol, the process), the RPC calls
 * this node served and made by service, method and status with their
 * latency and bytes, and what each module adds (ServiceModule metrics read
 * its engine's figures at scrape time).
 */
export class NodeMetrics {
  readonly registry = new Registry()
  private readonly served: Counter<'service' | 'method' | 'status'>
  private readonly servedSeconds: Histogram<'service' | 'method'>
  private readonly made: Counter<'service' | 'method' | 'status'>
  private readonly madeSeconds: Histogram<'service' | 'method'>
  private readonly bytes: Counter<'side' | 'direction' | 'service'>

  constructor () {
    const registers = [this.registry]
    this.served = new Counter({ name: 'opencloud_rpc_served_total', help: 'OpenCloud RPC calls this node answered, by service, method and status', labelNames: ['service', 'method', 'status'], registers })
    this.servedSeconds = new Histogram({ name: 'opencloud_rpc_served_seconds', help: 'Time from a request read to its answer written, of calls this node answered', labelNames: ['service', 'method'], buckets: LATENCY_BUCKETS, registers })
    this.made = new Counter({ name: 'opencloud_rpc_calls_total', help: 'OpenCloud RPC calls this node made to other peers, by service, method and status ("unanswered": no answer came)', labelNames: ['service', 'method', 'status'], registers })
    this.madeSeconds = new Histogram({ name: 'opencloud_rpc_call_seconds', help: 'Time from a request sent to its answer\'s head, of calls this node made', labelNames: ['service', 'method'], buckets: LATENCY_BUCKETS, registers })
    this.bytes = new Counter({ name: 'opencloud_rpc_body_bytes_total', help: 'Bytes of RPC request and answer bodies: side "server" for calls answered, "client" for calls made; direction "in" or "out" as seen by this node', labelNames: ['side', 'direction', 'service'], registers })
  }

  /** A call this node answered (RpcServerInit.onCall) */
  readonly onServed = (call: CallObservation): void => {
    this.served.inc({ service: call.service, method: call.method, status: call.status })
    this.servedSeconds.observe({ service: call.service, method: call.method }, call.seconds)
    this.bytes.inc({ side: 'server', direction: 'in', service: call.service }, call.requestBytes)
    this.bytes.inc({ side: 'server', direction: 'out', service: call.service }, call.responseBytes)
  }

  /** A call this node made (RpcClientInit.onCall) */
  readonly onMade = (call: CallObservation): void => {
    this.made.inc({ service: call.service, method: call.method, status: call.status })
    this.madeSeconds.observe({ service: call.service, method: call.method }, call.seconds)
    this.bytes.inc({ side: 'client', direction: 'out', service: call.service }, call.requestBytes)
    this.bytes.inc({ side: 'client', direction: 'in', service: call.service }, call.responseBytes)
  }

  /**
   * libp2p's metrics into this registry, for the first node of a process
   * (see libp2pMetricsTaken); undefined for the others. `dataDir`: the
   * file system whose space nodejs_fs_usage_bytes reports.
   */
  libp2p (dataDir: string): ((components: { logger: ComponentLogger }) => Metrics) | undefined {
    if (libp2pMetricsTaken) {
      return undefined
    }
    libp2pMetricsTaken = true
    return prometheusMetrics({ registry: this.registry, preserveExistingMetrics: true, statfsLocation: dataDir })
  }

  /** The Prometheus text of every metric, and its content type */
  async text (): Promise<{ body: string, contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType }
  }
}
