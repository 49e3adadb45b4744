/**
 * The test vectors of PROTOCOL.md, computed from fixed keys. Ed25519 and
 * RFC 6979 ECDSA signatures are deterministic, so the same inputs give the
 * same bytes in any correct implementation.
 *
 *   node scripts/protocol-vectors.ts > test/fixtures/protocol-vectors.json
 *
 * test/protocols/rpc/vectors.test.ts recomputes them and checks both that
 * file and PROTOCOL.md.
 */
import { createHash, hkdfSync } from 'node:crypto'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { networks } from 'bitcoinjs-lib'
import { FrameType, REQUEST_DOMAIN, RESPONSE_DOMAIN } from '../src/protocols/rpc/constants.ts'
import { bitcoinSigner, openCloudSigner } from '../src/protocols/rpc/credentials.ts'
import { encodeFrame } from '../src/protocols/rpc/frames.ts'
import { encodeHead, encodePayment, encodeRequestSigned, encodeResponseSigned, signingBytes } from '../src/protocols/rpc/messages.ts'
import { encodeChallenge, makeNonce } from '../src/protocols/rpc/nonce-store.ts'
import { buildTransaction } from '../src/payments/wallet/tx-builder.ts'
import { serviceCid } from '../src/services/peers/discovery.ts'
import { encodeOffer } from '../src/market/offer.ts'
import { encodeSummary } from '../src/reputation/summary.ts'
import { auditPath, challengeLeaves, dataRoot, leafHash, MerkleHasher } from '../src/storage/protocol/merkle.ts'
import { CONTRACT_VERSION, contractIdOf, encodeRevision, encodeSigned, encodeTerms, nextRevision, rentCharge, signRevision, signTerms, transferCost, transferRemainder, type ContractTerms, type RentState } from '../src/storage/protocol/contract.ts'
import { encodeProofs } from '../src/storage/protocol/proofs.ts'
import { ReedSolomon, split } from '../src/storage/protocol/erasure.ts'
import { objectKey, sealSegment, storageKeyFromSeed } from '../src/storage/protocol/crypto.ts'
import { Writer } from '../src/protocols/codec.ts'
import { signRating } from '../src/storage/protocol/rating.ts'
import { encodeGrant, encodeGrantBody, encodeShareText, SHARE_DOMAIN, signGrant, sortRoots } from '../src/storage/protocol/share.ts'
import { encodeCommit, encodeGenesis, encodeHeader, ledgerIdOf, signRedeemAuthorization, signTx, signVote, txRootOf, type Genesis } from '../src/ledger/encoding.ts'
import { LedgerState, stateLeaf } from '../src/ledger/state.ts'
import { anchorData } from '../src/ledger/checkpoints.ts'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import {
  channelId, channelOutput, channelScript, channelSighash, closeTransaction, payoutScript, refundTransaction, signChannel,
  signedRefund, stateOutputs, stateTransaction, type ChannelTerms
} from '../src/payments/channels/channel-script.ts'
import { formatBtc } from '../src/protocols/units.ts'
import { mnemonicToSeedSync } from '@scure/bip39'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { identityKeyFromSeed } from '../src/node/data-dir.ts'
import { indexKeyFromSeed, noteIdOf, sealNote } from '../src/storage/protocol/index-notes.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/**
 * The object index of the vectors (PROTOCOL.md 8g): the BIP39 test
 * mnemonic (no passphrase), an object id, a note's plaintext and a fixed
 * nonce (a real note's nonce is random)
 */
export const INDEX_VECTOR = {
  mnemonic: 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about',
  objectId: '00112233445566778899aabbccddeeff',
  plaintext: '{"id":"00112233445566778899aabbccddeeff","name":"hello.txt"}',
  nonce: Uint8Array.from({ length: 12 }, (_, i) => 0x50 + i)
}
const sha256 = (b: Uint8Array | string): Uint8Array => Uint8Array.from(createHash('sha256').update(b).digest())
const range = (start: number, n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => start + i)

/**
 * The payment channel of the vectors (PROTOCOL.md 8f) between two fixed
 * secp256k1 keys, on a made-up funding output: a txid that is not a
 * palindrome shows the byte order of the outpoint, output 1 shows its
 * index; capacity 50,180 less a fee of 180 leaves 50,000 sat usable
 */
export const CHANNEL_VECTOR: { payerPrivate: Uint8Array, payeePrivate: Uint8Array, terms: ChannelTerms } = (() => {
  const payerPrivate = new Uint8Array(32).fill(0x11)
  const payeePrivate = new Uint8Array(32).fill(0x22)
  return {
    payerPrivate,
    payeePrivate,
    terms: {
      txid: '0123456789abcdef'.repeat(4),
      vout: 1,
      capacity: 50_180n,
      fee: 180n,
      expiry: 1_000_000,
      payerKey: secp256k1.getPublicKey(payerPrivate, true),
      payeeKey: secp256k1.getPublicKey(payeePrivate, true)
    }
  }
})()

export async function computeVectors (): Promise<Record<string, any>> {
  const clientKey = await generateKeyPairFromSeed('Ed25519', range(0x00, 32))
  const serverKey = await generateKeyPairFromSeed('Ed25519', range(0x20, 32))
  const client = openCloudSigner(clientKey)
  const server = openCloudSigner(serverKey)
  const bitcoin = bitcoinSigner({ privateKey: new Uint8Array(32).fill(0x01), type: 'p2wpkh', network: networks.bitcoin })

  const body = new TextEncoder().encode('hello')
  const nonce = makeNonce(range(0x40, 16), 1n)
  const request = {
    credentials: [client.credential, bitcoin.credential],
    nonce,
    service: 'sha256',
    method: 'hash',
    args: [],
    payment: { type: 'none' as const },
    bodyLength: body.byteLength,
    bodySha256: sha256(body)
  }
  const requestSigned = encodeRequestSigned(request)
  const requestSigning = signingBytes(REQUEST_DOMAIN, requestSigned)
  const requestSignatures = [client.sign(requestSigning), bitcoin.sign(requestSigning)]
  const requestHead = encodeHead(requestSignatures, requestSigned)

  const answer = sha256(body)
  const responseSigned = encodeResponseSigned({
    credentials: [server.credential],
    requestDigest: sha256(requestSigning),
    nonce,
    status: 0,
    message: 'ok',
    bodyLength: answer.byteLength,
    bodySha256: sha256(answer)
  })
  const responseSigning = signingBytes(RESPONSE_DOMAIN, responseSigned)
  const responseSignature = server.sign(responseSigning)
  const responseHead = encodeHead([responseSignature], responseSigned)

  // a market offer by the server and a reputation summary by the client
  const offer = encodeOffer({
    provider: server.text.slice(3),
    service: 'sha256',
    method: 'hash',
    unit: 'MiB',
    price: 100n,
    currency: 'BTC',
    capacity: 0n,
    issuedAt: 1_767_225_600_000,
    validUntil: 1_767_226_200_000
  }, server)
  const summary = encodeSummary({ issuedAt: 1_767_225_600_000, opinions: new Map([[server.text.slice(3), 0.75], [client.text.slice(3), 0.25]]) }, client)

  // a refused call: too-low, with an acceptable payment the caller can make
  // (25 sat is under the dust limit, so the attached amount offered is 294 sat)
  const refusedSigned = encodeResponseSigned({
    credentials: [server.credential],
    requestDigest: sha256(requestSigning),
    nonce,
    status: 33,
    message: 'peers.list costs 0.00000025 BTC and the request carries no payment',
    acceptablePayment: { type: 'attached', currency: 'BTC', amount: '0.00000294' },
    bodyLength: 0,
    bodySha256: sha256(new Uint8Array(0))
  })

  // payments: a promise, and a transaction spending a made-up output of the
  // bitcoin key (RFC 6979 signatures make it the same bytes everywhere)
  const deferred = encodePayment({ type: 'defer', currency: 'BTC', amount: '0.000001', id: 'a1b2c3d4', threshold: 'time:600' })
  const tx = buildTransaction({
    coins: [{ txid: '11'.repeat(32), vout: 0, value: 100_000n, privateKey: new Uint8Array(32).fill(0x01) }],
    payees: [{ address: bitcoin.text.slice(4), value: 1000n }],
    changeAddress: bitcoin.text.slice(4),
    feeRate: 2,
    network: networks.bitcoin
  })
  const attached = encodePayment({ type: 'attached', currency: 'BTC', amount: '0.00001', txn: Uint8Array.from(Buffer.from(tx.hex, 'hex')) })

  // storage: a shard of 2 full leaves and a short one, a contract between
  // the client (renter) and the server (host), its first revision, a proof
  const shard = Uint8Array.from({ length: 2 * 4096 + 100 }, (_, i) => i % 251)
  const merkle = new MerkleHasher()
  merkle.update(shard)
  const shardRoot = merkle.digest()
  const challenge = range(0x60, 32)
  const picked = challengeLeaves(challenge, merkle.leaves.length, 4)
  const terms: ContractTerms = {
    version: CONTRACT_VERSION,
    renter: client.text.slice(3),
    host: server.text.slice(3),
    nonce: range(0x50, 16),
    start: 1_767_225_600_000,
    end: 1_767_225_600_000 + 30 * 86_400_000,
    maxBytes: 64 * 1024 ** 3,
    storagePrice: 2000n,
    uploadPrice: 1000n,
    downloadPrice: 2000n,
    rentPeriodMs: 86_400_000
  }
  const encodedTerms = encodeTerms(terms)
  const contractId = contractIdOf(encodedTerms)
  const renterTermsSignature = signTerms(encodedTerms, client)
  const hostTermsSignature = signTerms(encodedTerms, server)
  const revision = encodeRevision(nextRevision(contractId, 0, [{ root: shardRoot, length: shard.byteLength }]))
  const renterRevisionSignature = signRevision(revision, client)
  const hostRevisionSignature = signRevision(revision, server)
  // rent paid period by period as the contract fills: empty when formed,
  // then 10 KiB for three periods, then 1 GiB for one and for 29 more
  let rent: RentState = { accrued: 0n, paid: 0n }
  const rentSteps = ([[0, 1], [10 * 1024, 1], [10 * 1024, 1], [10 * 1024, 1], [1024 ** 3, 1], [1024 ** 3, 29]] as const).map(([held, periods]) => {
    const { accrued, price } = rentCharge(terms, rent, held, periods)
    rent = { accrued, paid: rent.paid + price }
    return { accrued: String(accrued), price: String(price) }
  })
  // from the state after step 5 (1 GiB held): 1000 gets of 1 MiB, each
  // free and accruing its remainder, then one period's rent, which pays
  // them (0 sat without the gets)
  const afterStep5: RentState = { accrued: BigInt(rentSteps[4].accrued), paid: 1n }
  const getRemainder = transferRemainder(terms.version, terms.downloadPrice, 1024 ** 2)
  const afterGets = rentCharge(terms, { ...afterStep5, accrued: afterStep5.accrued + 1000n * getRemainder }, 1024 ** 3, 1)
  const otherRoot = sha256('another shard')
  const proofs = encodeProofs([{ index: 2, leaf: shard.subarray(8192), path: auditPath(merkle.leaves, 2) }])
  const rs = new ReedSolomon(2, 4)
  const coded = split(new TextEncoder().encode('opencloud'), 2)
  const parity = rs.encode(coded)
  const storageKey = storageKeyFromSeed(range(0x70, 64))
  const objectId = range(0x90, 16)
  const key = objectKey(storageKey, objectId)

  // a share (8h): the client (renter) lets the server (holder) read the
  // shard above and the other one for a week, and the share text of a
  // one-segment object stored 1-of-2 on the server and the client
  const shareRoots = sortRoots([shardRoot, otherRoot])
  const grant = encodeGrant({ renter: client.text.slice(3), id: range(0xa0, 16), expires: 1_767_225_600_000 + 7 * 86_400_000, holder: server.text.slice(3), roots: shareRoots })
  const grantSignature = signGrant(grant, client)
  const shareText = encodeShareText({
    grant,
    signature: grantSignature,
    folder: '',
    objects: [{
      name: 'hello.txt', size: 13, sha256: hex(sha256('hello storage')), k: 1, n: 2, segmentSize: 4 * 1024 ** 2,
      id: hex(objectId), key,
      segments: [{ plainLength: 13, shardSize: 29, shards: [{ host: server.text.slice(3), root: hex(shareRoots[0]) }, { host: client.text.slice(3), root: hex(shareRoots[1]) }] }]
    }],
    // the server's get price under the contract above; the client's not known
    prices: new Map([[server.text.slice(3), { version: 2 as const, downloadPrice: terms.downloadPrice }]])
  })

  const bitcoinSignature = requestSignatures[1]
  // the Cloud Ledger: a genesis naming both keys, one block with a pool, a
  // request (the code) and its redemption, committed by both, and the anchor
  const clientId = client.text.slice(3)
  const serverId = server.text.slice(3)
  const genesis: Genesis = { chain: 'vectors', time: 1_767_225_600_000, validators: [clientId, serverId], slotMs: 1000, checkpointEvery: 1, maxTxsPerBlock: 100, maxRequestsPerSlot: 10, txTtlMs: 600_000 }
  const ledgerId = ledgerIdOf(genesis)
  const poolTx = signTx({ ledger: ledgerId, sender: clientId, time: 1_767_225_600_001, body: { kind: 'pool', name: 'starter', service: 'sha256', creditSat: 1000n, quantity: 10, ttlMs: 2_592_000_000, perRequester: 2 } }, client)
  const requestTx = signTx({ ledger: ledgerId, sender: serverId, time: 1_767_225_600_002, body: { kind: 'request', pool: poolTx.id } }, server)
  const authorization = signRedeemAuthorization(ledgerId, requestTx.id, clientId, server)
  const redeemTx = signTx({ ledger: ledgerId, sender: clientId, time: 1_767_225_600_003, body: { kind: 'redeem', code: requestTx.id, authorization } }, client)
  const ledgerState = new LedgerState(genesis, ledgerId)
  const txs = [poolTx, requestTx, redeemTx]
  const headerBase = { ledger: ledgerId, height: 1, round: 0, time: 1_767_225_600_010, prev: ledgerId, proposer: serverId, txRoot: txRootOf(txs) }
  const { appHash } = ledgerState.dryRun({ txs, header: headerBase })
  const header = { ...headerBase, appHash }
  const block = { header, txs, hash: sha256(encodeHeader(header)) }
  const commit = { round: 0, votes: [client, server].map(k => signVote(ledgerId, { type: 'precommit', height: 1, round: 0, block: block.hash, voter: k.text.slice(3) }, k)).map(v => ({ voter: v.voter, signature: v.signature })) }
  ledgerState.apply(block)
  const stateRoot = ledgerState.stateRoot()

  const { payerPrivate, payeePrivate, terms: channel } = CHANNEL_VECTOR
  const witnessScript = channelScript(channel)
  const funding = channelOutput(channel, networks.regtest)
  // the expiry as the script pushes it: the bytes between OP_ELSE and OP_CHECKLOCKTIMEVERIFY
  const expiryPush = (expiry: number): string => { const s = channelScript({ ...channel, expiry }); return hex(s.subarray(37, s.byteLength - 38)) }
  // three states: the payee's output below the dust limit, both outputs, the payer's below it
  const state = (total: bigint): Record<string, string> => {
    const tx = stateTransaction(channel, total)
    const { payee, payer, fee } = stateOutputs(channel, total)
    return { total: String(total), payee: String(payee), payer: String(payer), fee: String(fee), transaction: tx.toHex(), sighash: hex(channelSighash(channel, tx)), payerSignature: hex(signChannel(channel, tx, payerPrivate)) }
  }
  const paid = stateTransaction(channel, 30_000n)
  const payerSignature = signChannel(channel, paid, payerPrivate)
  const payeeSignature = signChannel(channel, paid, payeePrivate)
  const closing = closeTransaction(channel, paid, payerSignature, payeeSignature)
  const refund = signedRefund(channel, payerPrivate)

  return {
    keys: {
      clientEd25519Seed: hex(range(0x00, 32)),
      clientPeerId: client.text.slice(3),
      serverEd25519Seed: hex(range(0x20, 32)),
      serverPeerId: server.text.slice(3),
      bitcoinPrivateKey: hex(new Uint8Array(32).fill(0x01)),
      bitcoinAddress: bitcoin.text.slice(4)
    },
    request: {
      nonce: hex(nonce),
      body: hex(body),
      signedPart: hex(requestSigned),
      signingBytes: hex(requestSigning),
      signingDigest: hex(sha256(requestSigning)),
      opencloudSignature: hex(requestSignatures[0]),
      bitcoinMessage: `opencloud-rpc-v1:${hex(sha256(requestSigning))}`,
      bitcoinSignature: hex(bitcoinSignature),
      bitcoinSignatureHeader: String(bitcoinSignature[0]),
      bitcoinSignatureR: hex(bitcoinSignature.subarray(1, 33)),
      bitcoinSignatureS: hex(bitcoinSignature.subarray(33, 65)),
      bitcoinSignatureBase64: Buffer.from(bitcoinSignature).toString('base64'),
      frame: hex(encodeFrame(FrameType.REQUEST, requestHead).subarray()),
      bodyFrame: hex(encodeFrame(FrameType.DATA, body).subarray())
    },
    response: {
      body: hex(answer),
      signedPart: hex(responseSigned),
      signature: hex(responseSignature),
      frame: hex(encodeFrame(FrameType.RESPONSE, responseHead).subarray()),
      bodyFrame: hex(encodeFrame(FrameType.DATA, answer).subarray())
    },
    refused: {
      signedPart: hex(refusedSigned),
      signature: hex(server.sign(signingBytes(RESPONSE_DOMAIN, refusedSigned)))
    },
    refreshNonce: {
      body: hex(encodeChallenge({ challenge: range(0x40, 16), expiresAt: 1_767_226_200_000 }))
    },
    payments: {
      defer: hex(deferred),
      attachedTxid: tx.txid,
      attachedTransaction: tx.hex,
      attached: hex(attached)
    },
    channel: {
      payerPrivateKey: hex(payerPrivate),
      payerKey: hex(channel.payerKey),
      payeePrivateKey: hex(payeePrivate),
      payeeKey: hex(channel.payeeKey),
      fundingTxid: channel.txid,
      fundingVout: String(channel.vout),
      id: channelId(channel),
      capacity: String(channel.capacity),
      fee: String(channel.fee),
      expiry: String(channel.expiry),
      witnessScript: hex(witnessScript),
      outputScript: hex(funding.script),
      address: funding.address,
      payeePayout: hex(payoutScript(channel.payeeKey)),
      payerPayout: hex(payoutScript(channel.payerKey)),
      expiryPushes: Object.fromEntries([1, 16, 17, 127, 128, 32_767, 32_768, 8_388_608, 499_999_999].map(e => [String(e), expiryPush(e)])),
      state250: state(250n),
      state30000: state(30_000n),
      state49800: state(49_800n),
      // the second payment: 29,750 sat more, from the state of 250 to the state of 30,000
      paymentAmount: formatBtc(30_000n - 250n),
      payment: hex(encodePayment({ type: 'channel', currency: 'BTC', amount: formatBtc(30_000n - 250n), channel: channelId(channel), txn: paid.toBuffer(), signature: payerSignature })),
      payeeSignature: hex(payeeSignature),
      closeTransaction: closing.toHex(),
      closeTxid: closing.getId(),
      refundSighash: hex(channelSighash(channel, refundTransaction(channel))),
      refundTransaction: refund.toHex(),
      refundTxid: refund.getId()
    },
    discovery: {
      sha256Cid: (await serviceCid('sha256')).toString()
    },
    offer: {
      bytes: hex(offer)
    },
    summary: {
      bytes: hex(summary)
    },
    storage: {
      leaf0Hash: hex(leafHash(shard.subarray(0, 4096))),
      leaf2Hash: hex(merkle.leaves[2]),
      shardRoot: hex(shardRoot),
      challenge: hex(challenge),
      challengedLeaves: picked.join(','),
      dataRootOfTwo: hex(dataRoot([shardRoot, otherRoot])),
      dataRootOfNone: hex(dataRoot([])),
      terms: hex(encodedTerms),
      contractId: hex(contractId),
      renterTermsSignature: hex(renterTermsSignature),
      hostTermsSignature: hex(hostTermsSignature),
      proposal: hex(new Writer().bytes(encodedTerms).bytes(renterTermsSignature).finish()),
      signedTerms: hex(encodeSigned(encodedTerms, renterTermsSignature, hostTermsSignature)),
      rentSteps,
      uploadCostOf3TiBAnd1Byte: String(transferCost(terms.version, terms.uploadPrice, 3 * 1024 ** 4 + 1)),
      uploadRemainderOf3TiBAnd1Byte: String(transferRemainder(terms.version, terms.uploadPrice, 3 * 1024 ** 4 + 1)),
      // a shard's get at the market's price (2444 sat per TiB downloaded)
      getCostOf1MiBAt2444: String(transferCost(terms.version, 2444n, 1024 ** 2)),
      getRemainderOf1MiBAt2444: String(transferRemainder(terms.version, 2444n, 1024 ** 2)),
      rentAfterGets: {
        getCost: String(transferCost(terms.version, terms.downloadPrice, 1024 ** 2)),
        getRemainder: String(getRemainder),
        accrued: String(afterGets.accrued),
        price: String(afterGets.price)
      },
      revision: hex(revision),
      renterRevisionSignature: hex(renterRevisionSignature),
      hostRevisionSignature: hex(hostRevisionSignature),
      signedRevision: hex(encodeSigned(revision, renterRevisionSignature, hostRevisionSignature)),
      proofs: hex(proofs),
      rsData: coded.map(hex).join(','),
      rsParity: parity.map(hex).join(','),
      storageKey: hex(storageKey),
      objectKey: hex(key),
      sealedSegment1: hex(sealSegment(key, objectId, 1, new TextEncoder().encode('hello storage'))),
      renterRating: hex(signRating({ contractId, rater: client.text.slice(3), rated: server.text.slice(3), satisfactory: true, reason: 'served as agreed', at: 1_769_817_600_000 }, client))
    },
    index: await (async () => {
      const { mnemonic, objectId, plaintext, nonce } = INDEX_VECTOR
      const seed = mnemonicToSeedSync(mnemonic)
      const indexKey = indexKeyFromSeed(seed)
      const noteId = noteIdOf(indexKey, objectId)
      return {
        mnemonic,
        seed: hex(seed),
        identitySeed: hex(new Uint8Array(hkdfSync('sha256', seed, 'opencloud-identity', 'v1', 32))),
        identityPeerId: peerIdFromPrivateKey(await identityKeyFromSeed(seed)).toString(),
        indexKey: hex(indexKey),
        objectId,
        noteId,
        plaintext,
        nonce: hex(nonce),
        sealedNote: hex(sealNote(indexKey, noteId, new TextEncoder().encode(plaintext), nonce))
      }
    })(),
    share: {
      domain: hex(SHARE_DOMAIN),
      grant: hex(grant),
      signature: hex(grantSignature),
      body: hex(encodeGrantBody(grant, grantSignature)),
      text: shareText
    },
    ledger: {
      genesis: hex(encodeGenesis(genesis)),
      ledgerId: hex(ledgerId),
      poolTx: hex(poolTx.bytes),
      poolId: hex(poolTx.id),
      requestTx: hex(requestTx.bytes),
      code: hex(requestTx.id),
      authorization: hex(authorization),
      redeemTx: hex(redeemTx.bytes),
      header: hex(encodeHeader(header)),
      blockHash: hex(block.hash),
      appHash: hex(appHash),
      commit: hex(encodeCommit(commit)),
      stateRoot: hex(stateRoot),
      anchor: hex(anchorData(ledgerId, 1, stateRoot)),
      // each entry of the state after block 1, sorted by key: 0x00 || bytes key || bytes value
      stateLeaves: ledgerState.stateEntries().map(([key, value]) => hex(stateLeaf(key, value)))
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(JSON.stringify(await computeVectors(), null, 2) + '\n')
}
