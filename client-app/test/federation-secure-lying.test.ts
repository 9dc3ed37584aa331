// A coordinator that lies about who dropped, against real participants: the real coordinator,
// made to lie. Right after the honest secagg-unmask record of round 1 it sends a second one, signed
// with its own key like every record, that moves a survivor S to `dropped`: a participant that
// answered both would hand over S's self-seed share and S's mask-key share, enough (with others')
// to unmask S's input alone. Every participant refuses it: two different secagg-unmask records for
// one round are the coordinator showing two logs (FEDERATION_FORGED), and no reveal the coordinator
// receives holds a mask-key share of a survivor.

import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareUtf8, signRoundRecord, type RoundRecord, type RoundRecordOf } from '@fedit/shared';
import {
  SecureRound,
  createInvite,
  openFederationDir,
  startCoordinator,
  type CoordinatorEvent,
  type FederationSettings,
} from '@fedit/coordinator';
import { FACTS, writeTinyChatModel } from '../../test/fixtures/tiny-federation.ts';
import { initFederationFromModel } from '../src/operator/init-federation.ts';
import { Participant, joinFederation } from '../src/core/federation/index.ts';

const NAMES = ['ada', 'bo', 'cy'];

const SETTINGS = {
  name: 'lying coordinator test',
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
  participantsPerRound: { fraction: 1, minimum: 3 },
  minUpdates: 2,
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

test('participants refuse a second, lying secagg-unmask record that asks for both kinds of share of a survivor', async (t) => {
  t.timeout(90_000);
  const work = await mkdtemp(join(tmpdir(), 'fedit-secure-lying-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const modelDir = await writeTinyChatModel(join(work, 'model'), 0);
  const fedDir = join(work, 'federation');
  await initFederationFromModel(fedDir, { modelDir, modelName: 'tiny-test', seed: 1, settings: SETTINGS });
  const coordinatorKey = openFederationDir(fedDir).identity.sign.secretKey;

  // The lie, sent by the coordinator right after its honest unmask record, to everyone.
  let lie: RoundRecordOf<'secagg-unmask'> | undefined;
  const realFinish = SecureRound.prototype.finish;
  t.teardown(() => {
    SecureRound.prototype.finish = realFinish;
  });
  SecureRound.prototype.finish = function (this: SecureRound) {
    type Emitter = { emit(event: unknown, message: { record: RoundRecord }): void };
    const options = (this as unknown as { o: { broadcast: () => Emitter } }).o;
    const broadcast = options.broadcast;
    options.broadcast = () => {
      const to = broadcast();
      return {
        emit(event: unknown, message: { record: RoundRecord }) {
          to.emit(event, message);
          if (message.record.kind !== 'secagg-unmask') return;
          const { hash: _h, signature: _s, ...honest } = message.record;
          const [victim, ...rest] = honest.body.survivors;
          const dropped = [...honest.body.dropped, victim].sort(compareUtf8);
          lie = signRoundRecord(
            { ...honest, body: { survivors: rest, dropped } },
            coordinatorKey,
          ) as RoundRecordOf<'secagg-unmask'>;
          to.emit(event, { record: lie });
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
        (error: unknown) => ({ result: undefined, error: error as Error & { code?: string }, warnings }),
      );
  });
  const outcomes = await Promise.all(runs);

  t.truthy(lie, 'the coordinator sent its lie');
  for (const { error, warnings } of outcomes) {
    t.is(error?.code, 'FEDERATION_FORGED', `refused: ${error?.message ?? warnings.join('\n')}`);
    t.regex(error!.message, /two different secagg-unmask records for round 1/);
  }
  // No holder revealed more than once, so none gave both kinds of share of anyone.
  const reveals = events.filter((e) => e.type === 'secagg-received' && e.phase === 'reveal');
  t.true(reveals.length <= NAMES.length);
  const revealers = reveals.map((e) => (e as { participant: string }).participant);
  t.is(new Set(revealers).size, revealers.length, 'each holder revealed at most once');
});
