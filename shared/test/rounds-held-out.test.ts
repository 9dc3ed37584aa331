// Held-out figures: the participant signs them in its envelope, the round-closed record carries
// their example-weighted means (rounds/held-out.ts), and the audit holds the record to them.

import test from 'ava';
import nacl from 'tweetnacl';
import {
  hashTensors,
  heldOutMeans,
  selectParticipants,
  signRoundRecord,
  validateUnsignedEnvelope,
  verifyRoundLog,
  ZERO_HASH,
  type CountedUpdate,
  type HeldOutFigures,
  type RoundClosedBody,
  type RoundRecord,
  type RoundRecordBodies,
  type RoundRecordKind,
  type UnsignedRoundRecord,
} from '@fedit/shared';
import { PLACEHOLDER_TENSORS, participantIdentity, publicKeyHex, signedUpdate } from './helpers/envelopes.ts';

const coordinator = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(7));
const FEDERATION = 'held-out';
// Both updates are the placeholder tensors, as is the global adapter: the mean is that adapter again.
const ADAPTER = hashTensors(PLACEHOLDER_TENSORS);
const NEXT = ADAPTER;

const envelopeOf = (heldOut?: HeldOutFigures) =>
  ({ envelope: { heldOut } }) as unknown as Pick<CountedUpdate, 'envelope'>;

test('the held-out means are exact example-weighted means, rounded half to even, six decimals', (t) => {
  // (3 * 1_000_000 + 1 * 2_000_001) / 4 = 1_250_000.25 -> 1_250_000
  t.deepEqual(
    heldOutMeans([
      envelopeOf({ examples: 3, meanLossMicronats: 1_000_000, exactMatches: 1 }),
      envelopeOf(),
      envelopeOf({ examples: 1, meanLossMicronats: 2_000_001 }),
    ]),
    { reports: 2, examples: 4, meanLoss: '1.250000', exactMatchExamples: 3, exactMatch: '0.333333' },
  );
  // Ties go to the even neighbour: 1.5 micronats -> 2, 2.5 -> 2; 2/3 -> 0.666667.
  t.is(
    heldOutMeans([
      envelopeOf({ examples: 1, meanLossMicronats: 1 }),
      envelopeOf({ examples: 1, meanLossMicronats: 2 }),
    ])?.meanLoss,
    '0.000002',
  );
  t.is(
    heldOutMeans([
      envelopeOf({ examples: 1, meanLossMicronats: 2 }),
      envelopeOf({ examples: 1, meanLossMicronats: 3 }),
    ])?.meanLoss,
    '0.000002',
  );
  t.is(
    heldOutMeans([envelopeOf({ examples: 3, meanLossMicronats: 12_345_678, exactMatches: 2 })])?.exactMatch,
    '0.666667',
  );
  // No figures, no means: a log from before held-out figures keeps its records as they were.
  t.is(heldOutMeans([envelopeOf(), envelopeOf()]), undefined);
});

test('a malformed held-out figure in an envelope is refused, naming its field', (t) => {
  const base = {
    version: 1,
    federation: FEDERATION,
    round: 1,
    participant: participantIdentity('p-alice').sign.publicKey,
    globalAdapterHash: ADAPTER,
    exampleCount: 5,
    tensorSchema: [{ name: 'w', shape: [2], dtype: 'F32' }],
    payloadHash: ADAPTER,
    payloadBytes: 100,
    chunkBytes: 1024,
    chunkCount: 1,
    createdAt: Date.parse('2026-03-01T09:00:00.000Z'),
  };
  const refusal = (heldOut: unknown) =>
    t.throws(() => validateUnsignedEnvelope({ ...base, heldOut }))?.message ?? '';
  t.notThrows(() => validateUnsignedEnvelope({ ...base, heldOut: { examples: 4, meanLossMicronats: 9 } }));
  t.regex(refusal({ examples: 4, meanLossMicronats: 1.5 }), /envelope\.heldOut\.meanLossMicronats/);
  t.regex(refusal({ examples: 4, meanLossMicronats: Number.NaN }), /envelope\.heldOut\.meanLossMicronats/);
  t.regex(refusal({ examples: 4, meanLossMicronats: -1 }), /envelope\.heldOut\.meanLossMicronats/);
  t.regex(refusal({ examples: 33, meanLossMicronats: 9 }), /envelope\.heldOut\.examples/);
  t.regex(refusal({ examples: 4, meanLossMicronats: 9, exactMatches: 5 }), /envelope\.heldOut\.exactMatches/);
  t.regex(refusal({ examples: 4, meanLossMicronats: 9, accuracy: 1 }), /envelope\.heldOut\.accuracy/);
});

/** A log with one closed round whose two counted updates signed figures; the close as `edit` leaves it. */
function logWithFigures(edit: (body: RoundClosedBody) => void = () => {}): RoundRecord[] {
  const records: RoundRecord[] = [];
  const append = <K extends RoundRecordKind>(kind: K, round: number, body: RoundRecordBodies[K]) => {
    const unsigned = {
      seq: records.length,
      federation: FEDERATION,
      round,
      kind,
      prevHash: records.at(-1)?.hash ?? ZERO_HASH,
      time: new Date(Date.parse('2026-03-01T08:00:00.000Z') + records.length * 60_000).toISOString(),
      body,
    } as UnsignedRoundRecord; // K is one kind, and body that kind's
    records.push(signRoundRecord(unsigned, coordinator.secretKey));
  };
  append('config', 0, { settings: { baseModel: 'tiny' }, globalAdapter: ADAPTER });
  const people = ['p-alice', 'p-bob'];
  for (const participant of people)
    append('enrol', 0, { participant, publicKey: publicKeyHex(participantIdentity(participant)) });
  const selection = {
    seed: 's',
    fraction: '1',
    minimum: 2,
    selected: selectParticipants('s', people, '1', 2),
  };
  const rule = { name: 'fedit', config: {} };
  append('round-open', 1, { rule, selection, globalAdapter: ADAPTER, deadline: '2026-03-02T00:00:00.000Z' });
  const figures: HeldOutFigures[] = [
    { examples: 3, meanLossMicronats: 2_100_000, exactMatches: 1 },
    { examples: 5, meanLossMicronats: 1_500_000, exactMatches: 4 },
  ];
  const updates: CountedUpdate[] = people.map((participant, i) => ({
    participant,
    exampleCount: 10,
    updateHash: ADAPTER,
    ...signedUpdate(participantIdentity(participant), {
      federation: FEDERATION,
      round: 1,
      globalAdapterHash: ADAPTER,
      exampleCount: 10,
      heldOut: figures[i],
    }),
  }));
  const body: RoundClosedBody = {
    rule,
    selection,
    updates,
    globalAdapterIn: ADAPTER,
    globalAdapterOut: NEXT,
    dropped: [],
    metrics: {},
    heldOut: heldOutMeans(updates),
  };
  edit(body);
  append('round-closed', 1, body);
  return records;
}

/** The audit with the blob store: every envelope's signature is checked against its stored update. */
const audit = (records: RoundRecord[]) =>
  verifyRoundLog(records, {
    coordinatorPublicKey: coordinator.publicKey,
    blobs: (hash) => (hash === ADAPTER ? PLACEHOLDER_TENSORS : undefined),
  });

test('a round-closed record carries the means of the signed figures, and the audit verifies them', (t) => {
  const records = logWithFigures();
  // (3 * 2.1 + 5 * 1.5) / 8 = 1.725; 5 / 8 exact matches.
  t.deepEqual((records.at(-1)!.body as RoundClosedBody).heldOut, {
    reports: 2,
    examples: 8,
    meanLoss: '1.725000',
    exactMatchExamples: 8,
    exactMatch: '0.625000',
  });
  const report = audit(records);
  t.deepEqual(report.problems, []);
  t.true(report.ok);
});

test('a coordinator that signs other held-out means, or leaves them out, fails the audit', (t) => {
  for (const edit of [
    (body: RoundClosedBody) => (body.heldOut!.meanLoss = '1.200000'),
    (body: RoundClosedBody) => (body.heldOut!.exactMatch = '0.900000'),
    (body: RoundClosedBody) => delete body.heldOut,
  ]) {
    const report = audit(logWithFigures(edit));
    t.false(report.ok);
    t.deepEqual(
      report.problems.map((p) => p.code),
      ['HELD_OUT_MISMATCH'],
    );
  }
});

test("a figure changed in a recorded envelope breaks the participant's signature", (t) => {
  const report = audit(
    logWithFigures((body) => {
      body.updates[0].envelope.heldOut = { examples: 3, meanLossMicronats: 100 };
      body.heldOut = heldOutMeans(body.updates);
    }),
  );
  t.false(report.ok);
  t.deepEqual(
    report.problems.map((p) => p.code),
    ['ENVELOPE'],
  );
});
