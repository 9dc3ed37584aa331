// A coordinator that equivocates about who dropped, against real participants: the real
// coordinator, made to show two different secagg-unmask records of round 1, each signed with its
// own key like every record, to two halves of the survivors. The honest record (the one it logs)
// goes to the first half; the lie, which moves the first survivor S to `dropped`, to the second.
// Each holder checks only the one record it gets, so before the consistency check the first half
// would reveal S's self-seed share and the second half S's mask-key share: with t of each, S's
// input alone. Now each survivor signs the record it was shown, and no half holds t signatures of
// one record (4 survivors, t = 3): the coordinator cannot build a secagg-consistency record any
// holder accepts, nobody reveals, round 1 aborts with why, and the next round runs honestly.

import test from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  federationPaths,
  parseRoundRecord,
  signRoundRecord,
  type RoundRecord,
  type RoundRecordOf,
} from '@fedit/shared';
import {
  SecureRound,
  createInvite,
  openFederationDir,
  startCoordinator,
  type CoordinatorEvent,
  type FederationSettings,
} from '@fedit/coordinator';
import { FACTS, writeTinyChatModel } from '../../test/fixtures/tiny-federation.ts';
import { fedit } from '../../test/fixtures/fedit-cli.ts';
import { initFederationFromModel } from '../src/operator/init-federation.ts';
import { Participant, joinFederation } from '../src/core/federation/index.ts';

const NAMES = ['ada', 'bo', 'cy', 'dee'];

const SETTINGS = {
  name: 'equivocating coordinator test',
  lora: { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'v_proj'] },
  training: {
    localSteps: 1,
    batchSize: 2,
    lr: 1e-2,
    cutoffLen: 48,
    template: 'chat',
    trainOnInputs: false,
    scaffold: false,
  },
  rounds: 1,
  participantsPerRound: { fraction: 1, minimum: 4 },
  minUpdates: 3,
  roundDeadlineSeconds: 60,
  aggregation: { rule: 'fedit', weightCap: 4, clipping: undefined },
  secureAggregation: {
    graph: 'complete',
    thresholdFraction: 0.6,
    clipRange: 1,
    scaleBits: 16,
    maxParticipants: 8,
    phaseSeconds: 3,
  },
} as unknown as FederationSettings;

type Emitter = { emit(event: unknown, message: { record: RoundRecord }): void };
type Sockets = { fetchSockets(): Promise<(Emitter & { data: { participant?: string } })[]> };

test('a coordinator showing two secagg-unmask records to two halves of the survivors gets no share; the round aborts', async (t) => {
  t.timeout(120_000);
  const work = await mkdtemp(join(tmpdir(), 'fedit-secure-equivocation-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const modelDir = await writeTinyChatModel(join(work, 'model'), 0);
  const fedDir = join(work, 'federation');
  await initFederationFromModel(fedDir, { modelDir, modelName: 'tiny-test', seed: 1, settings: SETTINGS });
  const coordinatorKey = openFederationDir(fedDir).identity.sign.secretKey;

  let lie: RoundRecordOf<'secagg-unmask'> | undefined;
  const shown = new Map<string, string>(); // participant -> the unmask record hash it was sent
  const realFinish = SecureRound.prototype.finish;
  t.teardown(() => {
    SecureRound.prototype.finish = realFinish;
  });
  SecureRound.prototype.finish = function (this: SecureRound) {
    const options = (this as unknown as { o: { broadcast: () => Emitter & Sockets } }).o;
    const broadcast = options.broadcast;
    options.broadcast = () => {
      const to = broadcast();
      return {
        fetchSockets: () => to.fetchSockets(),
        emit(event: unknown, message: { record: RoundRecord }) {
          if (message.record.kind !== 'secagg-unmask' || message.record.round !== 1)
            return to.emit(event, message);
          const honest = message.record as RoundRecordOf<'secagg-unmask'>;
          const { hash: _h, signature: _s, ...unsigned } = honest;
          const [victim, ...rest] = honest.body.survivors;
          lie = signRoundRecord(
            { ...unsigned, body: { survivors: rest, dropped: [...honest.body.dropped, victim].sort() } },
            coordinatorKey,
          ) as RoundRecordOf<'secagg-unmask'>;
          const firstHalf = new Set(honest.body.survivors.slice(0, 2));
          void to.fetchSockets().then((sockets) => {
            for (const socket of sockets) {
              const p = socket.data.participant;
              if (p === undefined) continue;
              const record = firstHalf.has(p) ? honest : lie!;
              shown.set(p, record.hash);
              socket.emit(event, { record });
            }
          });
        },
      };
    };
    return realFinish.call(this);
  };

  const events: CoordinatorEvent[] = [];
  const coordinator = await startCoordinator({
    dir: fedDir,
    host: '127.0.0.1',
    port: 0,
    onEvent: (e) => events.push(e),
  });
  t.teardown(() => coordinator.close());
  const runs = NAMES.map(async (name, i) => {
    const home = join(work, name);
    const data = join(work, `${name}.jsonl`);
    const rows = [0, 1, 2].map((k) => FACTS[(i * 2 + k) % FACTS.length]);
    const lines = rows.map(([q, a]) =>
      JSON.stringify({
        messages: [
          { role: 'user', content: `The ${q}?` },
          { role: 'assistant', content: a },
        ],
      }),
    );
    await writeFile(data, lines.join('\n') + '\n');
    await joinFederation(createInvite(fedDir, { url: coordinator.url }), { home, displayName: name });
    const participant = new Participant();
    const warnings: string[] = [];
    participant.on('warning', (m) => warnings.push(m));
    return participant
      .start({ modelDir, dataFiles: [data], home, threads: 1, reconnectionDelayMax: 500 })
      .then(
        (result) => ({ result, error: undefined, warnings }),
        (error: unknown) => ({ result: undefined, error: error as Error, warnings }),
      );
  });
  const outcomes = await Promise.all(runs);

  t.truthy(lie, 'the coordinator sent its lie');
  t.is(shown.size, 4, 'each survivor was shown one of the two records');
  t.is(new Set(shown.values()).size, 2, 'two different records were shown');
  const log = (await readFile(federationPaths(fedDir).log, 'utf8'))
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => parseRoundRecord(JSON.parse(l), `line ${i + 1}`));
  const round1 = log.filter((r) => r.round === 1 && r.kind !== 'config');
  t.deepEqual(
    round1.map((r) => r.kind).filter((k) => k.startsWith('round-') || k.startsWith('secagg-')),
    ['round-open', 'secagg-keys', 'secagg-shares', 'secagg-unmask', 'round-aborted'],
  );
  const aborted = round1.at(-1) as RoundRecordOf<'round-aborted'>;
  t.regex(
    aborted.body.reason,
    /consistency phase: 2 survivors signed the secagg-unmask record, below the threshold 3/,
  );
  const revealed = events.filter(
    (e) => e.type === 'secagg-received' && e.phase === 'reveal' && e.round === 1,
  );
  t.deepEqual(revealed, [], 'no holder revealed a share in round 1');
  const signed = events.flatMap((e) =>
    e.type === 'secagg-received' && e.phase === 'consistency' && e.round === 1 ? [e.participant] : [],
  );
  t.deepEqual(
    signed.sort(),
    [...shown]
      .filter(([, h]) => h !== lie!.hash)
      .map(([p]) => p)
      .sort(),
  );
  // The second half's signatures were of the lie: refused by name.
  const lied = outcomes.filter((o) =>
    o.warnings.some((w) =>
      /refused secagg:consistency: signature: the consistency of .* is not signed by its enrolled key/.test(
        w,
      ),
    ),
  );
  t.is(lied.length, 2, outcomes.map((o) => o.warnings.join('\n')).join('\n---\n'));
  // The next round is honest: it runs through the consistency phase and closes; the log audits.
  for (const { result, error, warnings } of outcomes)
    t.is(result?.reason, 'finished', error?.message ?? warnings.join('\n'));
  t.true(log.some((r) => r.kind === 'secagg-consistency' && r.round === 2));
  t.true(log.some((r) => r.kind === 'round-closed' && r.round === 2));
  const audit = await fedit('audit', fedDir);
  t.is(audit.code, 0, audit.stdout + audit.stderr);
});
