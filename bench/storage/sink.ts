/** The raw baseline of bench/storage: a bare libp2p byte sink on a host */
export const SINK_PROTOCOL = '/bench/sink/1.0.0'
