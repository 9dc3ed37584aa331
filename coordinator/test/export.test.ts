// `exportRoundAdapter` on a federation whose first round was aborted and whose second aggregated:
// before any round aggregated there is nothing to export; the aborted round is refused by name;
// the default is the last aggregated round, counted as one round with its two updates; the card's
// audit command verifies the federation it came from.

import test from 'ava';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { auditFederation, FeditError, readAdapter } from '@fedit/shared';
import { exportRoundAdapter } from '@fedit/coordinator';
import { startTestFederation, tempDir } from './helpers/federation.ts';
import { Peer } from './helpers/peer.ts';

test('exports the last aggregated round; an aborted round or none yet is refused by name', async (t) => {
  // One round to aggregate: round 1 aborts and does not count, round 2 is the federation's result.
  const fed = await startTestFederation(t, { rounds: 1, minUpdates: 2, roundDeadlineSeconds: 2 });
  const out = tempDir(t, 'fedit-export-');
  const busy = await (await Peer.connect(fed.target())).join(fed.inviteToken());
  const idle = await (await Peer.connect(fed.target())).join(fed.inviteToken());
  t.teardown(() => [busy, idle].forEach((p) => p.close()));

  const nothingYet = await t.throwsAsync(exportRoundAdapter(fed.root, { out: join(out, 'none') }), {
    instanceOf: FeditError,
  });
  t.is((nothingYet as FeditError).code, 'EXPORT_NO_ROUND');
  t.regex(nothingYet.message, /no round has aggregated yet/);

  const open1 = await busy.roundOpen(1);
  t.like(await busy.upload(await busy.update(open1)), { ok: true });
  await fed.waitFor('round-aborted', (e) => e.round === 1);
  const open2 = await idle.roundOpen(2);
  for (const p of [busy, idle]) t.like(await p.upload(await p.update(open2)), { ok: true });
  const closed = await fed.waitFor('round-closed', (e) => e.round === 2);
  await fed.coordinator.finished;

  const aborted = await t.throwsAsync(exportRoundAdapter(fed.root, { round: 1, out: join(out, 'r1') }));
  t.regex(aborted.message, /--round 1: that round was aborted .*; rounds that aggregated: 2$/);
  const exported = await exportRoundAdapter(fed.root, { out: join(out, 'last') });
  t.is(exported.result.round, 2);
  t.is(exported.adapter.hash, closed.adapter);
  t.is((await readAdapter(join(out, 'last'))).hash, closed.adapter);
  t.like(exported.result, { roundsAggregated: 1, contributions: 2, exportedBy: 'coordinator' });
  const card = await readFile(join(out, 'last', 'README.md'), 'utf8');
  t.true(card.includes('| round | 2; 1 of 1 aggregated |'), card);
  t.true(card.includes('| contributions | 2 counted updates |'), card);
  const key = /--key ([0-9a-f]{64})\n/.exec(card)?.[1];
  if (!key) return t.fail(card);
  t.true(card.includes(`fedit audit ${fed.root} --key ${key}`), card);
  const report = await auditFederation(fed.root, { coordinatorKey: key });
  t.true(report.ok, JSON.stringify(report));
});
