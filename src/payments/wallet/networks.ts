import { networks, type Network } from 'bitcoinjs-lib'

/** The bitcoin networks a node can use; regtest is the testnet's local chain */
export type BitcoinNetworkName = 'regtest' | 'testnet4' | 'signet' | 'mainnet'
export const BITCOIN_NETWORKS: BitcoinNetworkName[] = ['regtest', 'testnet4', 'signet', 'mainnet']

export function bitcoinNetwork (name: BitcoinNetworkName): Network {
  switch (name) {
    case 'mainnet': return networks.bitcoin
    case 'regtest': return networks.regtest
    // testnet4 and signet share testnet's address formats (tb1...)
    default: return networks.testnet
  }
}

/** BIP44 coin type: 0 for mainnet, 1 for every test network */
export function coinType (name: BitcoinNetworkName): number {
  return name === 'mainnet' ? 0 : 1
}
