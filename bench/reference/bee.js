'use strict'
// Issue #3, reference side: Hyperbee 2 on Hypercore 10 with its block cache on
// (`cache: true`, its best configuration); same workload as bench/workloads/bee.py.
const path = require('path')
const Hypercore = require('hypercore')
const Hyperbee = require('hyperbee')
const { now, rate, main } = require('./common')

const key = (i) => 'key-' + String(i).padStart(8, '0')
const value = (i) => 'value-' + String(i).padStart(8, '0')

async function open(dir) {
  const db = new Hyperbee(new Hypercore(dir, { cache: true }), {
    keyEncoding: 'utf-8',
    valueEncoding: 'utf-8'
  })
  await db.ready()
  return db
}

main(async (p) => {
  const n = p.n
  const m = {}

  const db = await open(path.join(p.dir, 'seq'))
  let t = now()
  for (let i = 0; i < n; i++) await db.put(key(i), value(i))
  m.put_seq_ops = rate(n, now() - t)

  const bulk = await open(path.join(p.dir, 'batch'))
  t = now()
  const b = bulk.batch()
  for (let i = 0; i < n; i++) await b.put(key(i), value(i))
  await b.flush()
  m.put_batch_ops = rate(n, now() - t)
  await bulk.close()

  t = now()
  for (let i = 0; i < n; i++) {
    const j = Math.floor(Math.random() * n)
    const node = await db.get(key(j))
    if (node === null || node.value !== value(j)) throw new Error('missing key ' + key(j))
  }
  m.get_random_ops = rate(n, now() - t)

  t = now()
  let count = 0
  for await (const entry of db.createReadStream()) if (entry) count++
  m.scan_ops = rate(count, now() - t)
  if (count !== n) throw new Error(`scan saw ${count} of ${n}`)
  await db.close()

  return { metrics: m, info: { hyperbee: require('hyperbee/package.json').version } }
})
