'use strict'
// Issue #4, reference side: announce then lookup on hyperdht's own local testnet
// (hyperdht/testnet.js, every node bound to and bootstrapped from 127.0.0.1).
const crypto = require('crypto')
const DHT = require('hyperdht')
const createTestnet = require('hyperdht/testnet')
const { now, percentile, median, rssMB, assertLoopback, assertLocalNode, main } = require('./common')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function gc() {
  if (global.gc) global.gc()
}

// Hop count of a query: nodes from the routing table / bootstrap are hop 1, a node first
// learned from a hop-k reply is hop k+1. dht-rpc does not expose this, so we watch which
// node referred each pending node (Query#_addPending(node, referrer)).
function trackHops(query) {
  const hops = new Map()
  const add = query._addPending
  query._addPending = function (node, ref) {
    const addr = node.host + ':' + node.port
    const depth = ref ? (hops.get(ref.host + ':' + ref.port) || 1) + 1 : 1
    if (!hops.has(addr) || hops.get(addr) > depth) hops.set(addr, depth)
    return add.call(this, node, ref)
  }
  return (from) => hops.get(from.host + ':' + from.port) || 1
}

async function trial(announcer, looker) {
  const topic = crypto.randomBytes(32)
  const keyPair = DHT.keyPair()
  await announcer.announce(topic, keyPair, []).finished()

  const start = now()
  const query = looker.lookup(topic)
  const hopOf = trackHops(query)
  let first = null
  let hops = null
  for await (const data of query) {
    if (first !== null) continue
    if (data.peers.some((peer) => peer.publicKey.equals(keyPair.publicKey))) {
      first = (now() - start) * 1000
      hops = hopOf(data.from)
    }
  }
  return { ms: (now() - start) * 1000, first, hops }
}

async function network(size, trials, warmup, idle, m) {
  gc()
  const before = rssMB()
  const testnet = await createTestnet(size, { host: '127.0.0.1' })
  assertLoopback(testnet.bootstrap)
  for (const node of testnet.nodes) assertLocalNode(node)
  await sleep(1000)
  gc()
  if (idle) m.idle_node_mb = (rssMB() - before) / size

  const announcer = assertLocalNode(testnet.createNode())
  const looker = assertLocalNode(testnet.createNode())
  await announcer.fullyBootstrapped()
  await looker.fullyBootstrapped()

  // untimed first lookups (V8 optimises hot code as it runs), as on our side
  for (let i = 0; i < warmup; i++) await trial(announcer, looker)
  const results = []
  for (let i = 0; i < trials; i++) results.push(await trial(announcer, looker))
  const found = results.filter((r) => r.first !== null)
  const ms = results.map((r) => r.ms)
  m['lookup_p50_ms@' + size] = percentile(ms, 50)
  m['lookup_p95_ms@' + size] = percentile(ms, 95)
  if (found.length) {
    m['first_p50_ms@' + size] = percentile(found.map((r) => r.first), 50)
    m['first_p95_ms@' + size] = percentile(found.map((r) => r.first), 95)
    m['hops_median@' + size] = median(found.map((r) => r.hops))
  }
  m['success_pct@' + size] = (100 * found.length) / trials
  await testnet.destroy()
}

if (require.main === module) main(async (p) => {
  const m = {}
  // largest first: idle memory is read on the first network, before memory freed by an
  // earlier one could be reused and hide the cost
  const sizes = [...p.sizes].sort((a, b) => b - a)
  for (const [i, size] of sizes.entries()) await network(size, p.trials, p.warmup || 0, i === 0, m)
  return { metrics: m, info: { hyperdht: require('hyperdht/package.json').version } }
})

module.exports = { trial }
