// What a participant acts on is read from signed round records (rounds/announcement.ts): each
// check a single record allows refuses a forgery with a message naming it, and the views carry
// the record's fields and the config's training settings, never a field sent beside the record.
import test from 'ava';
import {
  AnnouncementError,
  configView,
  federationFinishedView,
  roundClosedView,
  roundOpenView,
  verifyAnnouncedRecord,
} from '../src/rounds/announcement.ts';
import { configHash, validateFederationConfig, type FederationConfig } from '../src/federation/config.ts';
import { roundLearningRate } from '../src/federation/schedule.ts';
import { fingerprint, generateIdentity, publicIdentity } from '../src/crypto/identity.ts';
import {
  ZERO_HASH,
  signRoundRecord,
  type RoundRecordOf,
  type UnsignedRoundRecord,
} from '../src/rounds/record.ts';

const config: FederationConfig = validateFederationConfig({
  id: 'fed-announce',
  name: 'announcements',
  baseModel: { identity: `sha256:${'ab'.repeat(32)}`, name: 'tiny' },
  lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'] },
  training: {
    localSteps: 12,
    batchSize: 3,
    lr: 4e-4,
    lrSchedule: { kind: 'linear', finalFraction: 0.25 },
    cutoffLen: 128,
    template: 'chat',
    trainOnInputs: false,
  },
  rounds: 4,
  participantsPerRound: { fraction: 1, minimum: 2 },
  roundDeadlineSeconds: 60,
  minUpdates: 2,
  aggregation: { rule: 'fedit' },
  limits: { maxUpdateNorm: 100, maxUploadBytes: 64 << 20, maxExampleCount: 1_000_000 },
});

const coordinator = generateIdentity();
const trust = { federation: config.id, coordinator: publicIdentity(coordinator) };
const hash = (c: string) => `sha256:${c.repeat(64)}`;
const TIME = '2026-12-07T10:00:00.000Z';

function signed<R extends UnsignedRoundRecord>(record: R, key = coordinator.sign.secretKey) {
  return signRoundRecord(record, key) as RoundRecordOf<R['kind']>;
}

const configRecord = signed({
  seq: 0,
  federation: config.id,
  round: 0,
  kind: 'config',
  prevHash: ZERO_HASH,
  time: TIME,
  body: {
    settings: { config: JSON.stringify(config), configHash: configHash(config), configHashVersion: 2 },
    globalAdapter: hash('a'),
  },
});

const openBody = {
  rule: { name: 'fedit', config: {} },
  selection: { seed: 'ab', fraction: '1', minimum: 2, selected: ['p1', 'p2'] },
  globalAdapter: hash('b'),
  deadline: '2026-12-07T10:05:00.000Z',
  trainingRound: 3,
  serverStateIn: hash('c'),
};
const openRecord = signed({
  seq: 7,
  federation: config.id,
  round: 5,
  kind: 'round-open',
  prevHash: hash('d'),
  time: TIME,
  body: openBody,
});

test('a round-open record gives the round, its selection, adapter, deadline, SCAFFOLD state and the config training', (t) => {
  const record = verifyAnnouncedRecord(
    structuredClone(openRecord),
    ['round-open'],
    trust,
    'a round announcement',
  );
  const open = roundOpenView(record, config);
  t.deepEqual(open, {
    round: 5,
    selected: ['p1', 'p2'],
    globalAdapterHash: hash('b'),
    deadline: Date.parse('2026-12-07T10:05:00.000Z'),
    // The schedule's rate of the record's trainingRound (3 of 4: lr * (1 - 0.75 * 2/3) = lr / 2).
    training: { steps: 12, learningRate: roundLearningRate(config, 3), batchSize: 3, seed: 5 },
    control: hash('c'),
    signed: { seq: 7, hash: openRecord.hash },
  });
  t.is(open.training.learningRate, 4e-4 * (1 - 0.75 * (2 / 3)));
});

test('each forgery of a record is refused, naming the record and what is wrong with it', (t) => {
  const refused = (value: unknown, message: RegExp) =>
    t.throws(() => verifyAnnouncedRecord(value, ['round-open'], trust, 'a round announcement'), {
      instanceOf: AnnouncementError,
      message,
    });
  const edited = structuredClone(openRecord);
  edited.body.globalAdapter = hash('e');
  refused(
    edited,
    /^a round announcement \(round 5's round-open record 7\) was altered: its content does not hash/,
  );
  // Re-hashed and signed with another key: the signature is not the pinned coordinator's.
  const impostor = generateIdentity();
  const { hash: _h, signature: _s, ...unsigned } = edited;
  refused(
    signed(unsigned, impostor.sign.secretKey),
    new RegExp(
      `^a round announcement \\(round 5's round-open record 7\\) is not signed by this federation's coordinator \\(fingerprint ${fingerprint(trust.coordinator)}\\)`,
    ),
  );
  refused(signed({ ...unsigned, federation: 'other' }), /is of federation other, not fed-announce$/);
  refused(structuredClone(configRecord), /\(config record 0\) is a config record, where round-open belongs$/);
  refused(
    { ...structuredClone(openRecord), seq: -1 },
    /^a round announcement does not carry a round record: /,
  );
  refused('round 5', /^a round announcement does not carry a round record: /);
});

test('a closed round is read from its round-closed record; an aborted one needs the record that opened it', (t) => {
  const closed = signed({
    seq: 9,
    federation: config.id,
    round: 5,
    kind: 'round-closed',
    prevHash: hash('f'),
    time: TIME,
    body: {
      rule: openBody.rule,
      selection: openBody.selection,
      updates: [],
      globalAdapterIn: hash('b'),
      globalAdapterOut: hash('9'),
      dropped: [],
      metrics: { updates: 0 },
      heldOut: { reports: 1, examples: 4, meanLoss: '1.500000' },
    },
  });
  t.deepEqual(roundClosedView(closed), {
    round: 5,
    outcome: 'aggregated',
    adapterHash: hash('9'),
    participants: 0,
    heldOut: { reports: 1, examples: 4, meanLoss: '1.500000' },
    signed: { seq: 9, hash: closed.hash },
  });
  t.deepEqual(federationFinishedView(closed, config), {
    rounds: 4,
    adapterHash: hash('9'),
    round: 5,
    updates: 0,
    signed: { seq: 9, hash: closed.hash },
  });
  const aborted = signed({
    seq: 8,
    federation: config.id,
    round: 5,
    kind: 'round-aborted',
    prevHash: hash('f'),
    time: TIME,
    body: { reason: 'too few', dropped: [] },
  });
  t.like(roundClosedView(aborted, openRecord), {
    outcome: 'aborted',
    adapterHash: hash('b'),
    participants: 0,
  });
  t.throws(() => roundClosedView(aborted), {
    instanceOf: AnnouncementError,
    message: /without the record that opened/,
  });
  const otherRound = signed({ ...openRecord, round: 4, hash: undefined, signature: undefined } as never);
  t.throws(() => roundClosedView(aborted, otherRound as RoundRecordOf<'round-open'>), {
    instanceOf: AnnouncementError,
  });
});

test("the config record gives the config text and its recorded hash; it must be the log's first record", (t) => {
  t.deepEqual(configView(configRecord, 'the settings'), {
    config: JSON.stringify(config),
    configHash: configHash(config),
  });
  t.throws(() => configView({ ...configRecord, seq: 3 }, 'the settings'), {
    instanceOf: AnnouncementError,
    message: /^the settings is not the federation's first record/,
  });
});
