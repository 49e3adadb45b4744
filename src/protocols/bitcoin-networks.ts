import { address as btcAddress, networks, type Network } from 'bitcoinjs-lib'

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

export class WrongNetworkAddressError extends Error {
  override name = 'WrongNetworkAddressError'
}

const ADDRESS_NETWORKS: Array<[string, Network]> = [['mainnet', networks.bitcoin], ['regtest', networks.regtest], ['testnet4 or signet', networks.testnet]]

/** Which network an address belongs to, by its prefix; undefined when it is no address at all */
export function addressNetworkOf (address: string): string | undefined {
  for (const [name, network] of ADDRESS_NETWORKS) {
    try {
      btcAddress.toOutputScript(address, network)
      return name
    } catch {}
  }
  return undefined
}

/**
 * Refuse an address that cannot be paid or checked on this node's network,
 * with one sentence saying which network it is for. A regtest node's base58
 * addresses are the test networks' too, so only what really differs counts.
 */
export function checkAddressNetwork (address: string, name: BitcoinNetworkName): void {
  try {
    btcAddress.toOutputScript(address, bitcoinNetwork(name))
    return
  } catch {}
  const other = addressNetworkOf(address)
  if (other == null) {
    throw new WrongNetworkAddressError(`"${address}" is not a bitcoin address`)
  }
  throw new WrongNetworkAddressError(`that address is for ${other}, this node runs ${name}`)
}
