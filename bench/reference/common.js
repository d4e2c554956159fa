'use strict'
// Shared by the reference workloads: parameters in, one JSON line out, loopback only.

const MB = 1e6 // decimal MB, as the Python side reports it

function params() {
  return JSON.parse(process.argv[2] || '{}')
}

function now() {
  return Number(process.hrtime.bigint()) / 1e9
}

function rate(count, seconds) {
  return seconds > 0 ? count / seconds : Infinity
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1]
}

function median(values) {
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}

function rssMB() {
  return process.memoryUsage().rss / MB
}

// Benchmarks talk to 127.0.0.1 only: refuse any bootstrap list that is not loopback,
// so a missing option can never fall back to hyperdht's public bootstrap nodes.
function assertLoopback(bootstrap) {
  if (!Array.isArray(bootstrap) || bootstrap.length === 0) {
    throw new Error('refusing to run without an explicit local bootstrap list')
  }
  for (const node of bootstrap) {
    const host = typeof node === 'string' ? node.split(':')[0] : node.host
    if (host !== '127.0.0.1') throw new Error('refusing non-loopback bootstrap node ' + host)
  }
  return bootstrap
}

// Same check on a live DHT node: its bootstrap list as dht-rpc parsed it.
function assertLocalNode(dht) {
  const nodes = dht.bootstrapNodes || []
  for (const node of nodes) {
    if (node.host !== '127.0.0.1') throw new Error('DHT node has a non-loopback bootstrap')
  }
  return dht
}

async function main(fn) {
  try {
    const result = await fn(params())
    process.stdout.write(JSON.stringify(result) + '\n')
    process.exit(0)
  } catch (err) {
    process.stderr.write((err && err.stack) || String(err))
    process.stdout.write(JSON.stringify({ error: String((err && err.message) || err) }) + '\n')
    process.exit(1)
  }
}

module.exports = { MB, params, now, rate, percentile, median, rssMB, assertLoopback, assertLocalNode, main }
