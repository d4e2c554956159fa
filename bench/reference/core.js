'use strict'
// Issue #2, reference side: Hypercore 10 on disk (random-access-file), same workload as
// bench/workloads/core.py.
const path = require('path')
const crypto = require('crypto')
const Hypercore = require('hypercore')
const { MB, now, rate, main } = require('./common')

main(async (p) => {
  const small = crypto.randomBytes(1024)
  const big = crypto.randomBytes(64 * 1024)
  const m = {}

  let core = new Hypercore(path.join(p.dir, 'single'))
  await core.ready()
  let t = now()
  for (let i = 0; i < p.single; i++) await core.append(small)
  let dt = now() - t
  m.append_1k_single_ops = rate(p.single, dt)
  m.append_1k_single_mbps = rate((p.single * small.length) / MB, dt)
  await core.close()

  core = new Hypercore(path.join(p.dir, 'batch'))
  await core.ready()
  const batch = new Array(p.batch_size).fill(small)
  t = now()
  for (let i = 0; i < p.batches; i++) await core.append(batch)
  dt = now() - t
  m.append_1k_batch_ops = rate(p.batches * p.batch_size, dt)
  m.append_1k_batch_mbps = rate((p.batches * p.batch_size * small.length) / MB, dt)

  const length = core.length
  t = now()
  for (let i = 0; i < p.gets; i++) await core.get(Math.floor(Math.random() * length))
  m.get_random_ops = rate(p.gets, now() - t)
  await core.close()

  core = new Hypercore(path.join(p.dir, 'big'))
  await core.ready()
  t = now()
  for (let i = 0; i < p.big; i++) await core.append(big)
  dt = now() - t
  m.append_64k_ops = rate(p.big, dt)
  m.append_64k_mbps = rate((p.big * big.length) / MB, dt)
  await core.close()

  return { metrics: m, info: { hypercore: require('hypercore/package.json').version } }
})
