// Participants of different LoRA ranks, end to end: a rank-8 federation under product-svd with
// three real participants (the tiny model, real training) that chose ranks 8, 4 and 2 when they
// joined. Each builds its trainer at its own rank (its graphs, activations and optimizer state are
// those of rank r_k: the memory it saves), uploads rank-r_k tensors, the rounds close and the
// audit recomputes them. A rank the federation cannot take is refused before anything is sent.

import test, { type ExecutionContext } from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BlobStore, auditFederation, federationPaths, readRoundLog, type RoundRecord } from '@fedit/shared';
import { createInvite } from '@fedit/coordinator';
import { assertCleanFailure, fedit } from '../../test/fixtures/fedit-cli.ts';
import { FACTS } from '../../test/fixtures/tiny-federation.ts';
import {
  DISK_LOADER,
  FederationError,
  joinFederation,
  Participant,
  type TrainingInputsLoader,
} from '../src/core/federation/index.ts';
import { participantRank } from '../src/core/federation/rank.ts';
import { parseRanks } from '../src/simulate/options.ts';
import { tinyLoopbackFederation, writeFactsChat } from './fixtures/loopback.ts';

const RANKS = [8, 4, 2];

async function federation(t: ExecutionContext, rule: string) {
  return tinyLoopbackFederation(t, {
    name: 'ranks',
    lora: { rank: 8, alpha: 16 },
    training: { localSteps: 2 },
    aggregation: { rule },
    rounds: 2,
    participantsPerRound: { fraction: 1, minimum: 3 },
    minUpdates: 3,
  });
}

test('product-svd: participants of ranks 8, 4 and 2 train at their own rank, upload it, and the audit recomputes every round', async (t) => {
  const { dir, modelDir, fedDir, coordinator, recorder } = await federation(t, 'product-svd');
  const trainerRanks: number[][] = RANKS.map(() => []);
  const runs = RANKS.map(async (rank, i) => {
    const home = join(dir, `p${i}`);
    const joined = await joinFederation(createInvite(fedDir, { url: coordinator.url }), {
      home,
      displayName: `p${i}`,
      rank,
    });
    t.is(joined!.membership.rank, rank);
    const membershipFile = JSON.parse(
      await readFile(join(home, 'federations', `${joined!.membership.federation}.json`), 'utf8'),
    );
    t.is(membershipFile.rank, rank, 'the chosen rank is kept in the membership file');
    const loader: TrainingInputsLoader = {
      ...DISK_LOADER,
      trainer: (options) => {
        trainerRanks[i].push(options.lora!.rank);
        return DISK_LOADER.trainer(options);
      },
    };
    const data = await writeFactsChat(join(dir, `p${i}.jsonl`), FACTS.slice(i * 2, i * 2 + 4));
    return new Participant().start({ modelDir, dataFiles: [data], home, threads: 1, loader });
  });
  const results = await Promise.all(runs);
  for (const r of results) t.is(r.reason, 'finished');
  t.deepEqual(trainerRanks, [[8], [4], [2]], "each trainer is built once, at the participant's own rank");

  const closes = recorder.events.filter((e) => e.type === 'round-closed');
  t.is(closes.length, 2, JSON.stringify(recorder.events));
  const blobs = new BlobStore(federationPaths(fedDir).blobs);
  const records = (await readRoundLog(federationPaths(fedDir).log)).records.filter(
    (r): r is RoundRecord & { kind: 'round-closed' } => r.kind === 'round-closed',
  );
  for (const record of records) {
    const ranks = record.body.updates.map((u) => [...blobs.get(u.updateHash)!.values()][0].shape[0]);
    t.deepEqual(
      [...ranks].sort((a, b) => b - a),
      RANKS,
      'the stored updates are of ranks 8, 4 and 2',
    );
    const global = blobs.get(record.body.globalAdapterOut)!;
    t.true(
      [...global.values()].every((tensor) => tensor.shape.includes(8)),
      'the global adapter stays rank 8',
    );
  }
  const report = await auditFederation(fedDir);
  t.true(report.ok, JSON.stringify(report.problems));
  t.deepEqual(
    report.rounds.map((r) => r.aggregation),
    ['verified', 'verified'],
  );
});

test('a rank the federation cannot take is refused when joining, naming the rule, before enrolling', async (t) => {
  const { dir, fedDir, coordinator, recorder } = await federation(t, 'fedit');
  const error = await t.throwsAsync(
    joinFederation(createInvite(fedDir, { url: coordinator.url }), { home: join(dir, 'p'), rank: 4 }),
    { instanceOf: FederationError },
  );
  t.is((error as FederationError).code, 'FEDERATION_RANK');
  t.regex(
    error!.message,
    /rank 4: federation fed-\w+ aggregates with rule fedit, which takes only its LoRA rank 8; .*product-svd/,
  );
  t.false(
    recorder.events.some((e) => e.type === 'enrolled'),
    'nothing was enrolled',
  );
});

test('participantRank: the federation rank by default, a whole number in 1..r, lower only under product-svd', (t) => {
  const settings = (rule: string) => ({ id: 'fed-1', lora: { rank: 8 }, aggregation: { rule } }) as never;
  t.is(participantRank(settings('fedit'), undefined), 8);
  t.is(participantRank(settings('fedit'), 8), 8);
  t.is(participantRank(settings('product-svd'), 3), 3);
  for (const bad of [0, 9, 2.5]) {
    const e = t.throws(() => participantRank(settings('product-svd'), bad, '--rank'), {
      instanceOf: FederationError,
    });
    t.is((e as FederationError).code, 'FEDERATION_RANK');
    t.is(e!.message, `--rank must be a whole number from 1 to 8 (federation fed-1's LoRA rank), got ${bad}`);
  }
  t.throws(() => participantRank(settings('median'), 4), {
    message: /rule median, which takes only its LoRA rank 8/,
  });
});

test('--ranks: whole numbers >= 1, one per participant, comma-separated', (t) => {
  t.deepEqual(parseRanks('8,4,2'), [8, 4, 2]);
  t.deepEqual(parseRanks(' 8, 8 ,8'), [8, 8, 8]);
  for (const bad of ['8,,2', '8,4.5', '0,8', 'eight', ''])
    t.throws(() => parseRanks(bad), { message: /^--ranks must be whole numbers >= 1 separated by commas/ });
});

test('fedit client join --rank: refused under fedit before joining; kept and shown under product-svd', async (t) => {
  const refused = await federation(t, 'fedit');
  const home = join(refused.dir, 'cli-home');
  const invite = createInvite(refused.fedDir, { url: refused.coordinator.url });
  assertCleanFailure(
    t,
    await fedit('client', 'join', invite, '--yes', '--rank', '4', '--home', home),
    /--rank 4: federation \S+ aggregates with rule fedit, .*\[FEDERATION_RANK\]$/,
  );
  t.false(
    refused.recorder.events.some((e) => e.type === 'enrolled'),
    'nothing was enrolled',
  );
  assertCleanFailure(
    t,
    await fedit('client', 'join', invite, '--yes', '--rank', 'two', '--home', home),
    /--rank must be a whole number/,
    2,
  );

  const taken = await federation(t, 'product-svd');
  const home2 = join(taken.dir, 'cli-home');
  const joined = await fedit(
    'client',
    'join',
    createInvite(taken.fedDir, { url: taken.coordinator.url }),
    '--yes',
    '--rank',
    '4',
    '--home',
    home2,
  );
  t.is(joined.code, 0, joined.stderr);
  t.regex(joined.stdout, /You will train LoRA rank 4 \(the federation's is 8\)/);
  const status = await fedit('client', 'status', '--home', home2);
  t.regex(status.stdout, /LoRA rank\s+4 \(the federation's: 8\)/);
});
