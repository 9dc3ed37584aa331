// SCAFFOLD through the real protocol: a two-participant federation with training.scaffold on
// loopback. Round 1 runs with each participant stopping after it; each keeps its c_i on disk, and
// the server's c (in the state the log names) is the mean of the participants' c_i (N = 2, c = 0
// before). Restarted, the participants read their c_i back, fetch c as round 2 announces it, train
// with the correction, and move c_i again; the federation's audit then recomputes both rounds,
// c included, bit for bit.

import test from 'ava';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  auditFederation,
  BlobStore,
  controlName,
  federationPaths,
  parseSafetensors,
  tensorToF32,
  tensorValues,
  type RoundClosedBody,
} from '@fedit/shared';
import { ownControlPath } from '../src/core/federation/store.ts';
import { aliceAndBob, tinyLoopbackFederation } from './fixtures/loopback.ts';

async function readControl(path: string): Promise<Map<string, Float32Array>> {
  const { tensors } = parseSafetensors(new Uint8Array(await readFile(path)), path);
  return new Map([...tensors].map(([name, tensor]) => [name, tensorToF32(tensor)]));
}

test('SCAFFOLD: c_i survives a restart, c is the mean of the c_i, and the audit recomputes every round', async (t) => {
  const lr = 1e-2;
  const localSteps = 3;
  const fed = await tinyLoopbackFederation(t, {
    name: 'scaffold',
    training: { localSteps, lr, scaffold: true },
    rounds: 2,
  });
  const { homes, federation, run } = await aliceAndBob(fed);
  const { fedDir } = fed;

  const first = await run(1);
  t.deepEqual(
    first.map((r) => r.history[0]?.outcome),
    ['aggregated', 'aggregated'],
  );
  const own1 = await Promise.all(homes.map((home) => readControl(ownControlPath(home, federation))));
  const store = new BlobStore(federationPaths(fedDir).blobs);
  const log = (await readFile(federationPaths(fedDir).log, 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { kind: string; round: number; body: unknown });
  const closed1 = log.find((r) => r.kind === 'round-closed' && r.round === 1)!.body as RoundClosedBody;
  t.like(closed1.rule.config, { scaffold: true });
  const c1 = tensorValues(store.get(closed1.serverStateOut!)!);
  t.true(own1[0].size > 0);
  for (const [name, ci] of own1[0]) {
    t.true(
      ci.some((v) => v !== 0),
      `${name}: c_i moved`,
    );
    const c = c1.get(controlName(name))!;
    // c_i+ = (x - y_i) / (K lr) from c = c_i = 0, and c+ = (1/N) sum of them with N = 2.
    for (let j = 0; j < c.length; j++) {
      const mean = (ci[j] + own1[1].get(name)![j]) / 2;
      t.true(Math.abs(c[j] - mean) <= 1e-5 * Math.max(1, Math.abs(mean)), `${name}[${j}]`);
    }
  }

  const second = await run();
  t.deepEqual(
    second.map((r) => r.reason),
    ['finished', 'finished'],
  );
  // Round 2 fetched c by the hash its announcement named: the state round 1 left, now cached.
  for (const home of homes)
    t.true(
      existsSync(join(home, 'adapters', `${closed1.serverStateOut!.slice('sha256:'.length)}.safetensors`)),
    );
  const own2 = await Promise.all(homes.map((home) => readControl(ownControlPath(home, federation))));
  for (const [name, ci] of own2[0])
    t.true(
      ci.some((v, j) => v !== own1[0].get(name)![j]),
      `${name} moved again`,
    );

  const audit = await auditFederation(fedDir);
  t.deepEqual(audit.problems, []);
  t.deepEqual(
    audit.rounds.map((r) => r.aggregation),
    ['verified', 'verified'],
  );
});
