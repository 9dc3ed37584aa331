// What the federation learned, through the real protocol: two participants on loopback each keep a
// seeded held-out slice, measure every global adapter they train from on it, and sign the figures
// into their updates; each round-closed record carries the example-weighted means, which the
// audit verifies, and a coordinator that signs other means is caught.

import test from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  auditFederation,
  canonicalJson,
  federationPaths,
  heldOutMeans,
  parseIdentity,
  signRoundRecord,
  type RoundClosedBody,
  type RoundRecord,
} from '@fedit/shared';
import type { FederationStatus } from '@fedit/coordinator';
import { fedit } from '../../test/fixtures/fedit-cli.ts';
import { heldOutPath, keepHeldOutRound, readHeldOutHistory } from '../src/core/federation/held-out.ts';
import { aliceAndBob, tinyLoopbackFederation } from './fixtures/loopback.ts';

const readLog = async (path: string) =>
  (await readFile(path, 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as RoundRecord);

test('each round record carries the held-out means the participants signed, and the audit checks them', async (t) => {
  const fed = await tinyLoopbackFederation(t, { name: 'held-out', rounds: 2 });
  const { homes, federation, run } = await aliceAndBob(fed);
  const results = await run();
  t.deepEqual(
    results.map((r) => r.reason),
    ['finished', 'finished'],
  );
  const paths = federationPaths(fed.fedDir);
  const log = await readLog(paths.log);
  const closed = log.filter((r) => r.kind === 'round-closed');
  t.is(closed.length, 2);
  for (const record of closed) {
    const body = record.body as RoundClosedBody;
    // Four facts each: min(10%, 32) rounds to one held-out example per participant.
    t.like(body.heldOut, { reports: 2, examples: 2, exactMatchExamples: 2 });
    t.regex(body.heldOut!.meanLoss, /^\d+\.\d{6}$/);
    t.deepEqual(body.heldOut, heldOutMeans(body.updates));
    t.true(body.updates.every((u) => u.envelope.heldOut?.examples === 1));
  }
  // Each participant kept its figures per round, for the adapter the round trained from, and for
  // the final adapter (as round 3's, the round that would train from it).
  const final = (closed[1].body as RoundClosedBody).globalAdapterOut;
  for (const home of homes) {
    const history = await readHeldOutHistory(home, federation);
    t.deepEqual(
      history.map((r) => [r.round, r.adapter, r.examples]),
      [...closed.map((r) => [r.round, (r.body as RoundClosedBody).globalAdapterIn, 1]), [3, final, 1]],
    );
    t.true(history.every((r) => Number.isFinite(r.loss) && r.loss > 0 && r.exactMatch !== undefined));
  }
  // Each round's history entry holds this participant's figures and, from 'round:closed', the federation's.
  for (const result of results)
    t.deepEqual(
      result.history.map((h) => [h.round, h.heldOutLoss !== undefined, h.federationHeldOutLoss]),
      closed.map((r) => [r.round, true, Number((r.body as RoundClosedBody).heldOut!.meanLoss)]),
    );
  const honest = await auditFederation(fed.fedDir);
  t.deepEqual(honest.problems, []);
  t.true(honest.ok);

  // The operator reads the same timeline from the log.
  const text = await fedit('coordinator', 'status', fed.fedDir);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /^round 1 {2}aggregated /m);
  t.regex(text.stdout, /^ {2}selected {2}2: /m);
  t.regex(text.stdout, /^ {2}counted {3}2: .*\(p[01]\) 3 examples, .*\(p[01]\) 3 examples$/m);
  const means2 = (closed[1].body as RoundClosedBody).heldOut!;
  t.true(
    text.stdout.includes(
      `  held-out  loss ${means2.meanLoss} over 2 examples from 2 participant(s), exact match`,
    ),
    text.stdout,
  );
  const json = await fedit('coordinator', 'status', fed.fedDir, '--json');
  t.is(json.code, 0, json.stderr);
  const status = JSON.parse(json.stdout) as FederationStatus;
  t.deepEqual(
    status.rounds.map((r) => [r.round, r.outcome, r.selected.length, r.counted.length, r.heldOut]),
    closed.map((r) => [r.round, 'aggregated', 2, 2, (r.body as RoundClosedBody).heldOut]),
  );

  // The coordinator (with its own key) rewrites round 2's mean loss and re-signs the record.
  await fed.coordinator.close();
  const keys = parseIdentity(JSON.parse(await readFile(paths.keys, 'utf8')));
  const index = log.findIndex((r) => r.kind === 'round-closed' && r.round === 2);
  const { hash: _h, signature: _s, ...unsigned } = structuredClone(log[index]);
  (unsigned.body as RoundClosedBody).heldOut!.meanLoss = '0.000001';
  const tampered = [...log];
  tampered[index] = signRoundRecord(unsigned, keys.sign.secretKey);
  for (let i = index + 1; i < tampered.length; i++) {
    const { hash: _hh, signature: _ss, ...rest } = tampered[i];
    tampered[i] = signRoundRecord({ ...rest, prevHash: tampered[i - 1].hash }, keys.sign.secretKey);
  }
  await writeFile(paths.log, tampered.map((r) => canonicalJson(r)).join('\n') + '\n');
  const report = await auditFederation(fed.fedDir);
  t.false(report.ok);
  t.deepEqual(
    report.problems.map((p) => p.code),
    ['HELD_OUT_MISMATCH'],
  );
});

test('the figures file keeps one entry per round, in order; an edited file is an error naming it', async (t) => {
  const home = await mkdtemp(join(tmpdir(), 'fedit-held-out-'));
  t.teardown(() => rm(home, { recursive: true, force: true }));
  const entry = (round: number, loss: number) => ({ round, adapter: `a${round}`, examples: 2, loss });
  t.deepEqual(await readHeldOutHistory(home, 'fed-1'), []);
  await keepHeldOutRound(home, 'fed-1', entry(2, 1.5));
  await keepHeldOutRound(home, 'fed-1', entry(1, 2.5));
  await keepHeldOutRound(home, 'fed-1', entry(2, 1.25)); // measured again after a restart
  t.deepEqual(await readHeldOutHistory(home, 'fed-1'), [entry(1, 2.5), entry(2, 1.25)]);
  await writeFile(heldOutPath(home, 'fed-1'), '{"rounds": [{"round": 1}]}');
  await t.throwsAsync(readHeldOutHistory(home, 'fed-1'), {
    code: 'FEDERATION_HOME',
    message: new RegExp(`${heldOutPath(home, 'fed-1').replace(/[.\\/]/g, '\\$&')} is corrupted`),
  });
});
