// Client-level differential privacy through a real coordinator and participants on loopback: each
// round commits to a noise seed kept owner-only in noise/, aggregates by DP-FedAvg with its noise,
// records the accountant's privacy, and the federation finishes when one more round would spend
// more than its epsilon budget, the finished record saying so; the audit regenerates the noise.

import test from 'ava';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  PrivacyAccountant,
  auditFederation,
  formatAudit,
  formatEpsilon,
  noiseSeedCommitment,
  readNoiseSeed,
  type RoundRecord,
} from '@fedit/shared';
import { createInvite } from '../src/index.ts';
import { fedit } from './helpers/cli.ts';
import {
  assertStoreIntact,
  logRecords,
  snapshotBlobs,
  startTestFederation,
  tempDir,
} from './helpers/federation.ts';
import { Peer } from './helpers/peer.ts';

const DELTA = 1e-5;
const SIGMA = 3;
/** The epsilon after `rounds` rounds that each sample 3 of 3 participants. */
const epsilonAfter = (rounds: number) => {
  const accountant = new PrivacyAccountant();
  for (let r = 0; r < rounds; r++) accountant.addRound({ selected: 3, eligible: 3, noiseMultiplier: SIGMA });
  return accountant.spent(DELTA).epsilon;
};

test('a DP federation runs until its budget is spent, and the audit regenerates every round’s noise', async (t) => {
  const budget = (epsilonAfter(2) + epsilonAfter(3)) / 2; // two rounds fit, a third would not
  const fed = await startTestFederation(t, {
    rounds: 5,
    participantsPerRound: { fraction: 1, minimum: 3 },
    minUpdates: 3,
    differentialPrivacy: { clipNorm: 0.01, noiseMultiplier: SIGMA, delta: DELTA, epsilonBudget: budget },
  });
  const before = snapshotBlobs(fed.root);
  const peers: Peer[] = [];
  for (let i = 0; i < 3; i++) peers.push(await (await Peer.connect(fed.target())).join(fed.inviteToken()));
  t.teardown(() => peers.forEach((p) => p.close()));
  for (const round of [1, 2]) {
    const open = await peers[0].roundOpen(round);
    for (const [k, peer] of peers.entries()) {
      const update = await peer.update(open, {
        values: (name, g) => g.map((v, i) => v + 1e-3 * (1 + ((i + k + name.length) % 3))),
      });
      t.like(await peer.upload(update), { ok: true });
    }
    await peers[0].roundClosed(round);
  }
  await peers[0].federationFinished();
  await fed.coordinator.finished;

  const records = await logRecords(fed.root);
  const of = <K extends RoundRecord['kind']>(kind: K) =>
    records.filter((r) => r.kind === kind) as (RoundRecord & { kind: K })[];
  t.is(of('round-closed').length, 2, 'two rounds aggregated of the five configured');
  const finished = of('finished')[0];
  t.is(finished.body.rounds, 2);
  t.regex(
    finished.body.reason ?? '',
    /^privacy budget spent: ε = [\d.]+ at δ = 0\.00001 after 2 round\(s\); one more round \(3 of 3 sampled\) would exceed the budget ε = /,
  );

  const [first, second] = of('round-closed');
  t.like(first.body.privacy, {
    noise: 'central',
    sampled: { selected: 3, eligible: 3 },
    noiseMultiplier: '3',
    clipNorm: '0.01',
  });
  t.is(second.body.privacy!.epsilon, String(epsilonAfter(2)));
  t.deepEqual(second.body.rule.config, {
    differentialPrivacy: { clipNorm: '0.01', noiseMultiplier: 3, noise: 'central' },
  });

  // The seeds: owner-only files, committed to at open, never in the log.
  const noiseDir = join(fed.root, 'noise');
  t.is(statSync(noiseDir).mode & 0o777, 0o700);
  t.deepEqual(readdirSync(noiseDir).sort(), ['round-1.seed', 'round-2.seed']);
  const log = readFileSync(join(fed.root, 'log', 'rounds.jsonl'), 'utf8');
  for (const open of of('round-open')) {
    const seed = readNoiseSeed(fed.root, open.round)!;
    t.is(statSync(join(noiseDir, `round-${open.round}.seed`)).mode & 0o777, 0o600);
    t.is(open.body.noiseCommitment, noiseSeedCommitment(seed));
    t.false(log.includes(Buffer.from(seed).toString('hex')), 'the seed is in no record');
  }

  const report = await auditFederation(fed.root);
  t.deepEqual(report.problems, []);
  t.deepEqual(
    report.rounds.map((r) => [r.aggregation, r.noise]),
    [
      ['verified', 'verified'],
      ['verified', 'verified'],
    ],
  );
  t.regex(formatAudit(report), /noise of round\(s\) 1, 2 was regenerated/);
  await assertStoreIntact(t, fed.root, before);

  // What people are told: the operator's status, and a participant reading the invite.
  const status = await fedit('coordinator', 'status', fed.root);
  t.is(status.code, 0, status.stderr);
  t.regex(status.stdout, /privacy {3}ε = [\d.]+ spent so far at δ = 0\.00001 \(this round: [\d.]+\)/);
  t.regex(status.stdout, /finished after 2 aggregated round\(s\): privacy budget spent: ε = /);
  const home = join(tempDir(t), 'home');
  const invite = createInvite(fed.root, { url: fed.coordinator.url });
  const join_ = await fedit('client', 'join', invite, '--yes', '--home', home);
  const shown = `privacy spent so far: ε = ${formatEpsilon(epsilonAfter(2))} at δ = 0.00001 (budget ${budget}), after round 2`;
  t.true(join_.stdout.includes(shown), `${shown}\nnot in\n${join_.stdout}\n${join_.stderr}`);
  t.regex(join_.stdout, /It does not hide your update from the coordinator/);
  t.is(join_.code, 0, join_.stderr);
  // `client status` shows the newest account among the round results this computer kept (written
  // by a participant as rounds close: here round 2's, in the results file's documented form).
  const { globalAdapterOut } = second.body;
  const results = {
    version: 1,
    rounds: [
      {
        round: 2,
        outcome: 'aggregated',
        adapterHash: globalAdapterOut,
        updates: 3,
        epsilon: second.body.privacy!.epsilon,
      },
    ],
  };
  mkdirSync(join(home, 'results'), { recursive: true });
  writeFileSync(join(home, 'results', `${records[0].federation}.json`), JSON.stringify(results));
  const clientStatus = await fedit('client', 'status', '--home', home);
  t.is(clientStatus.code, 0, clientStatus.stderr);
  t.true(clientStatus.stdout.includes(`privacy     ${shown}`), clientStatus.stdout);
  const invited = await fedit('coordinator', 'invite', fed.root, '--url', 'http://127.0.0.1:1');
  t.is(invited.code, 0, invited.stderr);
  t.true(invited.stderr.includes(`differential privacy: ${shown}`), invited.stderr);
});

test('federation:info carries the last round-closed record only under differential privacy', async (t) => {
  const fed = await startTestFederation(t, { rounds: 1, participantsPerRound: { fraction: 1, minimum: 2 } });
  const peer = await Peer.connect(fed.target());
  t.teardown(() => peer.close());
  const info = await peer.request('federation:info', {});
  t.true(info.ok);
  t.false('lastClosed' in info, 'a federation without DP answers as before');
});

test('a round left open by a stop is aborted at restart: its seed spent nothing, the next round draws a new one', async (t) => {
  const fed = await startTestFederation(t, {
    rounds: 1,
    participantsPerRound: { fraction: 1, minimum: 2 },
    minUpdates: 2,
    differentialPrivacy: { clipNorm: 0.01, noiseMultiplier: SIGMA, delta: DELTA },
  });
  const peers = [
    await (await Peer.connect(fed.target())).join(fed.inviteToken()),
    await (await Peer.connect(fed.target())).join(fed.inviteToken()),
  ];
  await peers[0].roundOpen(1);
  // The seed was on disk before the record that commits to it.
  const [open1] = (await logRecords(fed.root)).filter((r) => r.kind === 'round-open');
  const seed1 = readNoiseSeed(fed.root, 1)!;
  t.is((open1 as RoundRecord & { kind: 'round-open' }).body.noiseCommitment, noiseSeedCommitment(seed1));
  await fed.restart();
  const again = [await peers[0].reconnect(fed.target()), await peers[1].reconnect(fed.target())];
  t.teardown(() => again.forEach((p) => p.close()));
  const open2 = await again[0].roundOpen(2);
  for (const peer of again) t.like(await peer.upload(await peer.update(open2)), { ok: true });
  await again[0].roundClosed(2);
  await fed.coordinator.finished;
  const records = await logRecords(fed.root);
  t.deepEqual(
    records.filter((r) => r.kind.startsWith('round-')).map((r) => `${r.round}:${r.kind}`),
    ['1:round-open', '1:round-aborted', '2:round-open', '2:round-closed'],
  );
  t.notDeepEqual(readNoiseSeed(fed.root, 2), seed1);
  const closed = records.find((r) => r.kind === 'round-closed') as RoundRecord & { kind: 'round-closed' };
  // One round accounted: the aborted one published nothing and spent nothing.
  t.deepEqual(closed.body.privacy!.history, [{ selected: 2, eligible: 2, noiseMultiplier: '3', rounds: 1 }]);
  const report = await auditFederation(fed.root);
  t.deepEqual(report.problems, []);
  t.deepEqual(
    report.rounds.map((r) => [r.status, r.noise]),
    [
      ['aborted', undefined],
      ['closed', 'verified'],
    ],
  );
});
