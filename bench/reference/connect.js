'use strict'
// Issue #5, reference side: hyperswarm / hyperdht on hyperdht's local testnet (127.0.0.1 only).
//  - connect: from a lookup result (public key + relay addresses) to an open encrypted socket
//  - connect by key: dht.connect(publicKey) alone, its own findPeer included
//  - join:    from swarm.join(topic, client) to the first connection
//  - stream:  one socket, stream_mb MB from client to server
const crypto = require('crypto')
const { once } = require('events')
const Hyperswarm = require('hyperswarm')
const createTestnet = require('hyperdht/testnet')
const { MB, now, rate, percentile, assertLoopback, assertLocalNode, main } = require('./common')

const CHUNK = 64 * 1024

function newNode(testnet) {
  return assertLocalNode(testnet.createNode())
}

async function server(testnet, topic) {
  const swarm = new Hyperswarm({ dht: newNode(testnet) })
  swarm.on('connection', (socket) => {
    socket.on('error', () => {})
    socket.on('data', (data) => swarm.emit('bytes', data.byteLength))
  })
  await swarm.join(topic, { server: true, client: false }).flushed()
  return swarm
}

async function connectTrial(testnet, topic, publicKey) {
  const node = newNode(testnet)
  await node.fullyBootstrapped()
  let peer = null
  for await (const data of node.lookup(topic)) {
    peer = peer || data.peers.find((p) => p.publicKey.equals(publicKey))
  }
  if (!peer) throw new Error('lookup did not find the server')
  const start = now()
  const socket = node.connect(peer.publicKey, { relayAddresses: peer.relayAddresses })
  socket.on('error', () => {})
  await once(socket, 'open')
  const ms = (now() - start) * 1000
  socket.destroy()
  await node.destroy()
  return ms
}

async function connectKeyTrial(testnet, publicKey) {
  const node = newNode(testnet)
  await node.fullyBootstrapped()
  const start = now()
  const socket = node.connect(publicKey)
  socket.on('error', () => {})
  await once(socket, 'open')
  const ms = (now() - start) * 1000
  socket.destroy()
  await node.destroy()
  return ms
}

async function joinTrial(testnet, topic) {
  const swarm = new Hyperswarm({ dht: newNode(testnet) })
  await swarm.dht.fullyBootstrapped()
  const start = now()
  const connected = once(swarm, 'connection')
  swarm.join(topic, { server: false, client: true })
  const [socket] = await connected
  const ms = (now() - start) * 1000
  socket.on('error', () => {})
  await swarm.destroy()
  return ms
}

async function streamTrial(testnet, topic, srv, mb) {
  const swarm = new Hyperswarm({ dht: newNode(testnet) })
  const connected = once(swarm, 'connection')
  swarm.join(topic, { server: false, client: true })
  const [socket] = await connected
  const total = mb * MB
  let received = 0
  const done = new Promise((resolve) => {
    const onbytes = (n) => {
      received += n
      if (received >= total) {
        srv.removeListener('bytes', onbytes)
        resolve()
      }
    }
    srv.on('bytes', onbytes)
  })
  const chunk = crypto.randomBytes(CHUNK)
  const start = now()
  for (let sent = 0; sent < total; sent += CHUNK) {
    const piece = sent + CHUNK <= total ? chunk : chunk.subarray(0, total - sent)
    if (!socket.write(piece)) await once(socket, 'drain')
  }
  await done
  const mbps = rate(total / MB, now() - start)
  await swarm.destroy()
  return mbps
}

// p.trials timed trials after p.warmup untimed ones: the first trials of a kind run
// cold code (V8 has not optimised it yet); our side does the same
async function trials(p, trial) {
  for (let i = 0; i < (p.warmup || 0); i++) await trial()
  const out = []
  for (let i = 0; i < p.trials; i++) out.push(await trial())
  return out
}

if (require.main === module) main(async (p) => {
  const m = {}
  for (const [index, size] of p.sizes.entries()) {
    const testnet = await createTestnet(size, { host: '127.0.0.1' })
    assertLoopback(testnet.bootstrap)
    const topic = crypto.randomBytes(32)
    const srv = await server(testnet, topic)

    const key = srv.keyPair.publicKey
    const connect = await trials(p, () => connectTrial(testnet, topic, key))
    m['connect_p50_ms@' + size] = percentile(connect, 50)
    m['connect_p95_ms@' + size] = percentile(connect, 95)

    const byKey = await trials(p, () => connectKeyTrial(testnet, key))
    m['connect_key_p50_ms@' + size] = percentile(byKey, 50)
    m['connect_key_p95_ms@' + size] = percentile(byKey, 95)

    const join = await trials(p, () => joinTrial(testnet, topic))
    m['join_p50_ms@' + size] = percentile(join, 50)
    m['join_p95_ms@' + size] = percentile(join, 95)

    if (index === 0) m.stream_mbps = await streamTrial(testnet, topic, srv, p.stream_mb)
    await srv.destroy()
    await testnet.destroy()
  }
  return { metrics: m, info: { hyperswarm: require('hyperswarm/package.json').version } }
})

module.exports = { server, connectTrial, connectKeyTrial, joinTrial }
