'use strict'
// The reference side of `python -m bench.paired`: one network, warmed up, then chunks
// of timed trials on request (a line "N" on stdin -> a JSON list of N times in ms on
// stdout; "0" or EOF ends it), so the harness can take turns with our side chunk by
// chunk. Same trials as dht.js / connect.js, on hyperdht's testnet at 127.0.0.1.
const crypto = require('crypto')
const readline = require('readline')
const createTestnet = require('hyperdht/testnet')
const { params, assertLoopback, assertLocalNode } = require('./common')
const { trial } = require('./dht')
const { server, connectTrial, connectKeyTrial, joinTrial } = require('./connect')

async function setup(p, testnet) {
  if (p.kind === 'dht') {
    const announcer = assertLocalNode(testnet.createNode())
    const looker = assertLocalNode(testnet.createNode())
    await announcer.fullyBootstrapped()
    await looker.fullyBootstrapped()
    return { run: async () => (await trial(announcer, looker)).ms, close: async () => {} }
  }
  const topic = crypto.randomBytes(32)
  const srv = await server(testnet, topic)
  const key = srv.keyPair.publicKey
  const trials = {
    connect: () => connectTrial(testnet, topic, key),
    key: () => connectKeyTrial(testnet, key),
    join: () => joinTrial(testnet, topic)
  }
  const run = trials[p.kind]
  return { run, close: () => srv.destroy() }
}

async function serve() {
  const p = params()
  const testnet = await createTestnet(p.size, { host: '127.0.0.1' })
  assertLoopback(testnet.bootstrap)
  for (const node of testnet.nodes) assertLocalNode(node)
  const side = await setup(p, testnet)
  for (let i = 0; i < p.warmup; i++) await side.run()
  process.stdout.write('ready\n')
  const lines = readline.createInterface({ input: process.stdin })
  for await (const line of lines) {
    const n = Number(line)
    if (!n) break
    const times = []
    for (let i = 0; i < n; i++) times.push(await side.run())
    process.stdout.write(JSON.stringify(times) + '\n')
  }
  await side.close()
  await testnet.destroy()
  process.exit(0)
}

serve().catch((err) => {
  process.stderr.write((err && err.stack) || String(err))
  process.exit(1)
})
