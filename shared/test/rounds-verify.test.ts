// An auditor verifies a round log with its blob store: every edit, removal or reordering is caught,
// every missing or altered blob, and a coordinator that signs a dishonest round or invents updates.

import test from 'ava';
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import {
  aggregateContributions,
  canonicalJson,
  FeditError,
  fingerprint,
  hashTensors,
  publicIdentity,
  roundRecordHash,
  scanRoundLog,
  selectParticipants,
  signRoundRecord,
  tensorFromF32,
  tensorsFromValues,
  verifyRoundLog,
  verifyRoundLogLines,
  ZERO_HASH,
  type AdapterSchema,
  type CountedUpdate,
  type EnrolBody,
  type Identity,
  type RoundClosedBody,
  type RoundRecord,
  type RoundRecordBodies,
  type RoundRecordKind,
  type Tensor,
  type UnsignedRoundRecord,
  type VerificationProblemCode,
  type VerifyOptions,
} from '@fedit/shared';
import { participantIdentity, publicKeyHex, signedUpdate } from './helpers/envelopes.ts';

const coordinator = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(1));
const impostor = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(2));
const FEDERATION = 'support-tickets';

const schema: AdapterSchema = new Map<string, number[]>([
  ['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', [2, 4]],
  ['base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', [4, 2]],
]);

function tensors(seed: number): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  let i = 0;
  for (const [name, shape] of schema) {
    const values = Float32Array.from({ length: shape[0] * shape[1] }, () => Math.sin(seed * 31 + i++) / 3);
    out.set(name, tensorFromF32(shape, values));
  }
  return out;
}

const digest = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}` as const;

/** Writes records the way an (honest or not) coordinator does: chained and signed. */
class Coordinator {
  readonly records: RoundRecord[] = [];
  readonly blobs = new Map<string, Map<string, Tensor>>();
  #time = Date.parse('2026-03-01T08:00:00.000Z');
  #lastRound = 0;

  constructor(readonly secretKey = coordinator.secretKey) {}

  append<K extends RoundRecordKind>(kind: K, body: RoundRecordBodies[K]): RoundRecord {
    if (kind === 'round-open') this.#lastRound++;
    const previous = this.records.at(-1);
    const record = signRoundRecord(
      {
        seq: this.records.length,
        federation: FEDERATION,
        round: this.#lastRound,
        kind,
        prevHash: previous?.hash ?? ZERO_HASH,
        time: new Date((this.#time += 60_000)).toISOString(),
        body,
      } as UnsignedRoundRecord, // K is one kind, and body that kind's: TypeScript cannot correlate the two
      this.secretKey,
    );
    this.records.push(record);
    return record;
  }

  store(blob: Map<string, Tensor>): string {
    const hash = hashTensors(blob);
    this.blobs.set(hash, blob);
    return hash;
  }

  get global(): string {
    for (const record of [...this.records].reverse()) {
      if (record.kind === 'round-closed') return record.body.globalAdapterOut;
      if (record.kind === 'config' && record.body.globalAdapter) return record.body.globalAdapter;
    }
    throw new Error('no global adapter');
  }

  eligible(): string[] {
    const enrolled = new Set<string>();
    for (const r of this.records) {
      if (r.kind === 'enrol') enrolled.add(r.body.participant);
      if (r.kind === 'revoke') enrolled.delete(r.body.participant);
    }
    return [...enrolled];
  }

  /**
   * Opens a round, trains every selected participant but the last (who is late), closes it.
   * `fraction` '1' selects everyone; `everyoneCounted` counts the last one too; `identityOf` gives
   * the key a participant signs its update with.
   */
  round(
    seed: string,
    rule: 'fedit' | 'fedavg-uniform',
    seedOffset: number,
    { fraction = '0.6', everyoneCounted = false, identityOf = participantIdentity } = {},
  ): RoundClosedBody {
    const selection = {
      seed,
      fraction,
      minimum: 2,
      selected: selectParticipants(seed, this.eligible(), fraction, 2),
    };
    const globalAdapter = this.global;
    this.append('round-open', {
      rule: { name: rule, config: {} },
      selection,
      globalAdapter,
      deadline: '2026-03-02T00:00:00.000Z',
    });
    const counted = everyoneCounted ? selection.selected : selection.selected.slice(0, -1);
    const updates: CountedUpdate[] = counted.map((participant, i) => {
      const blob = tensors(seedOffset + i);
      const exampleCount = 10 * (i + 1) + 3;
      return {
        participant,
        exampleCount,
        updateHash: this.store(blob),
        ...signedUpdate(identityOf(participant), {
          federation: FEDERATION,
          round: this.#lastRound,
          globalAdapterHash: globalAdapter,
          exampleCount,
          tensors: blob,
        }),
      };
    });
    const result = aggregateContributions(
      rule,
      {},
      schema,
      updates.map((u) => ({
        participant: u.participant,
        exampleCount: u.exampleCount,
        update: () => tensorValues(this.blobs.get(u.updateHash)!),
      })),
    );
    const body: RoundClosedBody = {
      rule: { name: rule, config: {} },
      selection,
      updates,
      globalAdapterIn: globalAdapter,
      globalAdapterOut: this.store(tensorsFromValues(schema, result)),
      dropped: everyoneCounted
        ? []
        : [{ participant: selection.selected.at(-1)!, reason: 'late: uploaded after the deadline' }],
      metrics: { examples: updates.reduce((s, u) => s + u.exampleCount, 0), trainLoss: '1.8342' },
    };
    this.append('round-closed', body);
    return body;
  }
}

function tensorValues(blob: Map<string, Tensor>): Map<string, Float32Array> {
  return new Map([...blob].map(([n, t]) => [n, new Float32Array(new Uint8Array(t.data).buffer)]));
}

const PARTICIPANTS = ['p-alice', 'p-bob', 'p-carol', 'p-dave', 'p-erin'];

/** An honest federation: 5 enrolled, 2 closed rounds (fedit, fedavg-uniform), 1 aborted, 1 open. */
function honestFederation(): Coordinator {
  const c = new Coordinator();
  c.append('config', { settings: { baseModel: 'tiny', rank: 2 }, globalAdapter: c.store(tensors(0)) });
  for (const participant of PARTICIPANTS)
    c.append('enrol', { participant, publicKey: publicKeyHex(participantIdentity(participant)) });
  c.round('seed-1', 'fedit', 100);
  c.append('revoke', { participant: 'p-bob', reason: 'key reported stolen' });
  c.append('enrol', { participant: 'p-frank', publicKey: publicKeyHex(participantIdentity('p-frank')) });
  c.round('seed-2', 'fedavg-uniform', 200);
  const seed = 'seed-3';
  c.append('round-open', {
    rule: { name: 'fedit', config: {} },
    selection: {
      seed,
      fraction: '0.6',
      minimum: 2,
      selected: selectParticipants(seed, c.eligible(), '0.6', 2),
    },
    globalAdapter: c.global,
    deadline: '2026-03-03T00:00:00.000Z',
  });
  c.append('round-aborted', { reason: 'quorum not reached by the deadline', dropped: [] });
  c.append('round-open', {
    rule: { name: 'fedit', config: {} },
    selection: {
      seed: 'seed-4',
      fraction: '0.6',
      minimum: 2,
      selected: selectParticipants('seed-4', c.eligible(), '0.6', 2),
    },
    globalAdapter: c.global,
    deadline: '2026-03-04T00:00:00.000Z',
  });
  return c;
}

const honest = honestFederation();
const options = (blobs?: Map<string, Map<string, Tensor>>): VerifyOptions => ({
  coordinatorPublicKey: coordinator.publicKey,
  blobs: blobs && ((hash) => blobs.get(hash)),
});
const indexOf = (records: RoundRecord[], kind: RoundRecordKind, round: number) =>
  records.findIndex((r) => r.kind === kind && r.round === round);
const codes = (report: { problems: { code: VerificationProblemCode }[] }) =>
  report.problems.map((p) => p.code);

/** A dishonest coordinator edits a record and re-signs it and everything after it. */
function resign(records: RoundRecord[], from: number, secretKey = coordinator.secretKey): RoundRecord[] {
  const out = records.map((r) => structuredClone(r));
  for (let i = from; i < out.length; i++) {
    const { hash: _hash, signature: _signature, ...fields } = out[i];
    out[i] = signRoundRecord({ ...fields, prevHash: i === 0 ? ZERO_HASH : out[i - 1].hash }, secretKey);
  }
  return out;
}

function edited<K extends RoundRecordKind>(
  kind: K,
  round: number,
  edit: (body: RoundRecordBodies[K]) => void,
  records = honest.records,
): RoundRecord[] {
  const index = indexOf(records, kind, round);
  const copy = records.map((r) => structuredClone(r));
  edit(copy[index].body as RoundRecordBodies[K]);
  return resign(copy, index);
}

test('an honest log verifies, and each closed round is recomputed from the stored updates', (t) => {
  const report = verifyRoundLog(honest.records, options(honest.blobs));
  t.deepEqual(report.problems, []);
  t.true(report.ok);
  t.is(report.firstFailure, undefined);
  t.is(report.records, honest.records.length);
  t.is(report.head, honest.records.at(-1)!.hash);
  t.deepEqual(
    report.rounds.map((r) => [r.round, r.status, r.rule, r.aggregation, r.ok]),
    [
      [1, 'closed', 'fedit', 'verified', true],
      [2, 'closed', 'fedavg-uniform', 'verified', true],
      [3, 'aborted', 'fedit', 'unchecked', true],
      [4, 'open', 'fedit', 'unchecked', true],
    ],
  );
  const closed = honest.records[indexOf(honest.records, 'round-closed', 1)] as RoundRecord & {
    kind: 'round-closed';
  };
  t.deepEqual(
    report.rounds[0].participants,
    closed.body.updates.map((u) => u.participant),
  );
  t.deepEqual(report.rounds[0].selected, closed.body.selection.selected);
  t.is(report.rounds[0].selected.length, 3);
});

test('without a blob store (the coordinator checking before it appends) the log alone verifies, aggregation unchecked', (t) => {
  const report = verifyRoundLog(honest.records, options());
  t.true(report.ok);
  t.deepEqual(
    report.rounds.map((r) => r.aggregation),
    ['unchecked', 'unchecked', 'unchecked', 'unchecked'],
  );
});

test('a missing update blob fails its round, naming the round and the hash', (t) => {
  const closed = honest.records[indexOf(honest.records, 'round-closed', 1)] as RoundRecord & {
    kind: 'round-closed';
  };
  const missing = closed.body.updates[0];
  const blobs = new Map(honest.blobs);
  blobs.delete(missing.updateHash);
  const report = verifyRoundLog(honest.records, options(blobs));
  t.false(report.ok);
  t.deepEqual(codes(report), ['BLOB_MISSING']);
  t.is(report.firstFailure?.round, 1);
  t.is(
    report.firstFailure?.message,
    `record ${indexOf(honest.records, 'round-closed', 1)} (round-closed, round 1): the update of ${missing.participant} ${missing.updateHash} is not in the blob store; without it this record cannot be checked`,
  );
  t.is(report.rounds[0].aggregation, 'failed');
  t.false(report.rounds[0].ok);
  t.deepEqual(report.rounds[0].missingBlobs, [missing.updateHash]);
  t.is(report.rounds[1].aggregation, 'verified');
});

test('an empty blob store fails every round and the initial adapter', (t) => {
  const report = verifyRoundLog(honest.records, options(new Map()));
  t.false(report.ok);
  t.true(codes(report).every((c) => c === 'BLOB_MISSING'));
  t.is(report.firstFailure?.seq, 0, 'the config record names the initial adapter');
  t.deepEqual(
    report.rounds.map((r) => [r.round, r.aggregation, r.ok]),
    [
      [1, 'failed', false],
      [2, 'failed', false],
      [3, 'unchecked', true],
      [4, 'unchecked', true],
    ],
  );
});

test('a blob the store cannot read is a problem of its round', (t) => {
  const closed = honest.records[indexOf(honest.records, 'round-closed', 2)].body as RoundClosedBody;
  const unreadable = closed.updates[0].updateHash;
  const report = verifyRoundLog(honest.records, {
    ...options(),
    blobs: (hash) => {
      if (hash === unreadable) throw new FeditError('SAFETENSORS_HEADER', 'the header is not JSON');
      return honest.blobs.get(hash);
    },
  });
  t.deepEqual(codes(report), ['BLOB_CORRUPT']);
  t.is(report.firstFailure?.round, 2);
  t.regex(
    report.firstFailure!.message,
    new RegExp(`${unreadable} cannot be read from the blob store: the header is not JSON`),
  );
});

test('flipping any byte of any record body that still parses is detected at that record', (t) => {
  let flips = 0;
  for (const index of [
    0,
    indexOf(honest.records, 'round-closed', 1),
    indexOf(honest.records, 'round-open', 2),
  ]) {
    const line = canonicalJson(honest.records[index]);
    const bodyStart = line.indexOf('"body":') + 7;
    const bodyEnd = line.indexOf(',"federation":');
    for (let i = bodyStart; i < bodyEnd; i++) {
      const flipped = line.slice(0, i) + String.fromCharCode(line.charCodeAt(i) ^ 1) + line.slice(i + 1);
      let record: unknown;
      try {
        record = JSON.parse(flipped);
      } catch {
        continue; // a line that no longer parses is refused by readRoundLog (rounds-log tests)
      }
      const records: unknown[] = [...honest.records];
      records[index] = record;
      const report = verifyRoundLog(records, {});
      t.false(report.ok, `byte ${i} of record ${index}`);
      t.is(report.firstFailure?.seq, index);
      flips++;
    }
  }
  t.true(flips > 500);
});

test('an edited exampleCount is named: the record was changed after it was signed', (t) => {
  const index = indexOf(honest.records, 'round-closed', 1);
  const records = honest.records.map((r) => structuredClone(r));
  (records[index].body as RoundClosedBody).updates[0].exampleCount += 1000;
  const report = verifyRoundLog(records, options(honest.blobs));
  t.false(report.ok);
  t.is(report.firstFailure?.code, 'RECORD_HASH');
  t.is(report.firstFailure?.seq, index);
  t.is(report.firstFailure?.round, 1);
  t.regex(
    report.firstFailure!.message,
    /^record \d+ \(round-closed, round 1\): its content hashes to .* it was changed after it was signed/,
  );
  t.false(report.rounds[0].ok);
  // And with the blobs at hand, the weights no longer produce the recorded adapter either.
  t.true(codes(report).includes('AGGREGATION_MISMATCH'));
});

test('removing any record but the last is detected at the record after it', (t) => {
  for (let i = 0; i < honest.records.length - 1; i++) {
    const records = honest.records.filter((_, j) => j !== i);
    // The hash chain catches it; signatures (slow in tweetnacl) are checked in other tests.
    const report = verifyRoundLog(records, {});
    t.false(report.ok, `removed ${i}`);
    t.is(report.firstFailure?.seq, i + 1, `removed ${i}`);
    t.true(codes(report).includes('CHAIN_BROKEN'));
    t.true(codes(report).includes('SEQ_GAP'));
  }
});

test('removing the last record leaves a valid log with an earlier head: publish the head to pin it', (t) => {
  const report = verifyRoundLog(honest.records.slice(0, -1), options());
  t.true(report.ok);
  t.not(report.head, honest.records.at(-1)!.hash);
});

test('swapping any two adjacent records is detected', (t) => {
  for (let i = 0; i + 1 < honest.records.length; i++) {
    const records = [...honest.records];
    [records[i], records[i + 1]] = [records[i + 1], records[i]];
    const report = verifyRoundLog(records, {});
    t.false(report.ok, `swapped ${i} and ${i + 1}`);
    t.is(report.firstFailure?.seq, i + 1);
  }
});

test('a changed signature is detected on every record', (t) => {
  for (let i = 0; i < honest.records.length; i++) {
    const records = honest.records.map((r) => structuredClone(r));
    const s = records[i].signature;
    records[i].signature = s.slice(0, 10) + (s[10] === '0' ? '1' : '0') + s.slice(11);
    const report = verifyRoundLog(records, options());
    t.deepEqual(codes(report), ['RECORD_SIGNATURE'], `record ${i}`);
    t.is(report.firstFailure?.seq, i);
  }
});

test('a malleated signature (S + L), which tweetnacl alone accepts, is refused', (t) => {
  const records = honest.records.map((r) => structuredClone(r));
  const signature = Buffer.from(records[0].signature, 'hex');
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(signature[i]);
  s += 2n ** 252n + 27742317777372353535851937790883648493n;
  for (let i = 32; i < 64; i++) {
    signature[i] = Number(s & 0xffn);
    s >>= 8n;
  }
  t.is(s, 0n); // still fits in 32 bytes
  const domain = Buffer.from('fedit/record/v1');
  const message = createHash('sha256')
    .update(Uint8Array.of(domain.length))
    .update(domain)
    .update(Buffer.from(records[0].hash.slice(7), 'hex'))
    .digest();
  t.true(nacl.sign.detached.verify(message, signature, coordinator.publicKey));
  records[0].signature = signature.toString('hex');
  t.deepEqual(codes(verifyRoundLog(records, options())), ['RECORD_SIGNATURE']);
});

test("a log signed by another key fails every record's signature", (t) => {
  const records = resign(honest.records, 0, impostor.secretKey);
  const report = verifyRoundLog(records, options());
  t.is(report.problems.length, records.length);
  t.true(codes(report).every((c) => c === 'RECORD_SIGNATURE'));
  t.true(verifyRoundLog(records, { coordinatorPublicKey: impostor.publicKey }).ok);
});

test('an update counted twice in a round is detected', (t) => {
  const records = edited('round-closed', 1, (body) => {
    body.updates.splice(1, 0, structuredClone(body.updates[0]));
  });
  const report = verifyRoundLog(records, options());
  t.is(report.firstFailure?.code, 'DUPLICATE_UPDATE');
  t.is(report.firstFailure?.round, 1);
  t.true(codes(report).includes('REPLAYED_ENVELOPE'));
});

test('an update of a participant who was not selected is detected', (t) => {
  let outsider = '';
  const records = edited('round-closed', 1, (body) => {
    outsider = PARTICIPANTS.find((p) => !body.selection.selected.includes(p))!;
    body.updates.push({
      participant: outsider,
      exampleCount: 50,
      updateHash: body.updates[0].updateHash,
      ...signedUpdate(participantIdentity(outsider), {
        federation: FEDERATION,
        round: 1,
        globalAdapterHash: body.globalAdapterIn,
        exampleCount: 50,
      }),
    });
    body.updates.sort((a, b) => (a.participant < b.participant ? -1 : 1));
  });
  const report = verifyRoundLog(records, options());
  t.deepEqual(codes(report), ['NOT_SELECTED']);
  t.regex(
    report.firstFailure!.message,
    new RegExp(
      `the envelope of ${outsider} breaks admission rule UPDATE_NOT_SELECTED: this participant was not selected for round 1$`,
    ),
  );
  t.is(report.rounds[0].ok, false);
  t.is(report.rounds[1].ok, true);
});

test('a selection that the seed does not produce is detected', (t) => {
  const swap = (body: { selection: { selected: string[] } }) => {
    const outsider = PARTICIPANTS.find((p) => !body.selection.selected.includes(p))!;
    body.selection.selected = [...body.selection.selected.slice(1), outsider].sort();
  };
  const records = edited('round-open', 1, swap);
  const report = verifyRoundLog(records, options());
  t.is(report.firstFailure?.code, 'SELECTION_MISMATCH');
  t.regex(report.firstFailure!.message, /but seed "seed-1" selects/);
});

test('an update of a participant revoked before the close is detected', (t) => {
  // Round 2's first counted participant is revoked while the round is open, and still counted.
  const close = indexOf(honest.records, 'round-closed', 2);
  const victim = (honest.records[close].body as RoundClosedBody).updates[0].participant;
  const revoke = signRoundRecord(
    { ...honest.records[close - 1], kind: 'revoke', body: { participant: victim, reason: 'left' } },
    coordinator.secretKey,
  );
  const records = [...honest.records.slice(0, close), revoke, ...honest.records.slice(close)].map(
    (r, seq) => ({ ...r, seq }),
  );
  const report = verifyRoundLog(resign(records as RoundRecord[], close), options());
  t.is(report.firstFailure?.code, 'REVOKED_PARTICIPANT');
  t.is(report.firstFailure?.seq, close + 1);
  t.regex(
    report.firstFailure!.message,
    new RegExp(`counts an update of ${victim}, whose enrolment was revoked`),
  );
});

test('an envelope counted in an earlier round is a replay', (t) => {
  const first = (honest.records[indexOf(honest.records, 'round-closed', 1)].body as RoundClosedBody)
    .updates[0];
  const records = edited('round-closed', 2, (body) => {
    body.updates[0].envelopeDigest = first.envelopeDigest;
  });
  const report = verifyRoundLog(records, options());
  t.deepEqual(codes(report), ['REPLAYED_ENVELOPE']);
  t.is(report.firstFailure?.round, 2);
});

test('a changed global adapter blob is detected', (t) => {
  const closed = honest.records[indexOf(honest.records, 'round-closed', 1)].body as RoundClosedBody;
  const blobs = new Map(honest.blobs);
  const changed = structuredClone(blobs.get(closed.globalAdapterOut)!);
  const [name, tensor] = [...changed][0];
  tensor.data[0] ^= 1;
  blobs.set(closed.globalAdapterOut, changed);
  const report = verifyRoundLog(honest.records, options(blobs));
  // Round 1 wrote it, round 2 trained from it.
  t.deepEqual(codes(report), ['BLOB_CORRUPT', 'BLOB_CORRUPT']);
  t.deepEqual(report.rounds.map((r) => r.aggregation).slice(0, 2), ['failed', 'failed']);
  t.is(report.firstFailure?.round, 1);
  t.regex(
    report.firstFailure!.message,
    /the new global adapter stored under sha256:\w+ hashes to sha256:\w+; the blob was changed/,
  );
  t.regex(report.problems[1].message, /round 2\): the global adapter stored under/);
  t.truthy(name);
});

test('a changed update blob is detected', (t) => {
  const closed = honest.records[indexOf(honest.records, 'round-closed', 2)].body as RoundClosedBody;
  const blobs = new Map(honest.blobs);
  const changed = structuredClone(blobs.get(closed.updates[1].updateHash)!);
  [...changed.values()][1].data[5] ^= 0x40;
  blobs.set(closed.updates[1].updateHash, changed);
  const report = verifyRoundLog(honest.records, options(blobs));
  t.deepEqual(codes(report), ['BLOB_CORRUPT']);
  t.is(report.rounds[1].aggregation, 'failed');
  t.regex(
    report.firstFailure!.message,
    new RegExp(`the update of ${closed.updates[1].participant} stored under`),
  );
});

test('a new global adapter that is not the rule applied to the updates is detected', (t) => {
  // The coordinator publishes (and stores, consistently hashed) an adapter of its own making.
  const forged = tensors(999);
  const forgedHash = hashTensors(forged);
  const blobs = new Map(honest.blobs).set(forgedHash, forged);
  const records = edited('round-closed', 2, (body) => {
    body.globalAdapterOut = forgedHash;
  });
  const open3 = indexOf(records, 'round-open', 3);
  (records[open3].body as { globalAdapter: string }).globalAdapter = forgedHash;
  (records[open3 + 2].body as { globalAdapter: string }).globalAdapter = forgedHash;
  const report = verifyRoundLog(resign(records, open3), options(blobs));
  t.deepEqual(codes(report), ['AGGREGATION_MISMATCH']);
  t.regex(
    report.firstFailure!.message,
    /rule fedavg-uniform applied to the 2 stored updates gives sha256:\w+, not the recorded/,
  );
  // The same log without blobs cannot tell.
  t.true(verifyRoundLog(resign(records, open3), options()).ok);
});

test('a round that trains from another adapter than the global one is detected', (t) => {
  const records = edited('round-open', 2, (body) => {
    body.globalAdapter = digest('elsewhere');
  });
  const report = verifyRoundLog(records, options());
  t.is(report.firstFailure?.code, 'GLOBAL_MISMATCH');
  t.is(report.firstFailure?.round, 2);
});

test('a round announcing another server state than the last round left is detected', (t) => {
  const records = edited('round-open', 2, (body) => {
    body.serverStateIn = digest('elsewhere');
  });
  const report = verifyRoundLog(records, options());
  t.is(report.firstFailure?.code, 'GLOBAL_MISMATCH');
  t.is(report.firstFailure?.round, 2);
  t.regex(
    report.firstFailure!.message,
    /announces server state sha256:[0-9a-f]{64}, but the last round left \(none\)/,
  );
});

test('a rule that differs between open and close, or does not exist, is detected', (t) => {
  const changed = verifyRoundLog(
    edited('round-closed', 1, (body) => {
      body.rule = { name: 'fedavg-uniform', config: {} };
    }),
    options(honest.blobs),
  );
  t.is(changed.firstFailure?.code, 'OPEN_CLOSE_MISMATCH');
  const unknown = verifyRoundLog(
    edited('round-open', 1, (body) => {
      body.rule = { name: 'bulyan', config: {} };
    }),
    options(),
  );
  t.is(unknown.firstFailure?.code, 'UNKNOWN_RULE');
  t.regex(
    unknown.firstFailure!.message,
    /unknown aggregation rule "bulyan"; known rules: fedavg-uniform, fedit/,
  );
});

/** A federation whose coordinator enrols `enrolments` (participant id, identity, extra body fields). */
function federationOf(enrolments: [string, Identity, Partial<EnrolBody>?][]): Coordinator {
  const c = new Coordinator();
  c.append('config', { settings: { baseModel: 'tiny', rank: 2 }, globalAdapter: c.store(tensors(0)) });
  for (const [participant, identity, extra] of enrolments)
    c.append('enrol', { participant, publicKey: publicKeyHex(identity), ...extra });
  return c;
}

test('one key enrolled under a second participant id (a sybil) fails the audit, though both are counted', (t) => {
  const alice = participantIdentity('p-alice');
  const identities = new Map([
    ['p-alice', alice],
    ['p-bob', participantIdentity('p-bob')],
    ['p-alice-again', alice],
  ]);
  const c = federationOf([...identities]);
  const body = c.round('seed-1', 'fedit', 100, {
    fraction: '1',
    everyoneCounted: true,
    identityOf: (p) => identities.get(p)!,
  });
  t.deepEqual(body.updates.map((u) => u.participant).sort(), ['p-alice', 'p-alice-again', 'p-bob']);
  const report = verifyRoundLog(c.records, options(c.blobs));
  t.false(report.ok);
  t.deepEqual(codes(report), ['KEY_ALREADY_ENROLLED']);
  t.is(report.firstFailure?.seq, 3);
  t.is(
    report.firstFailure?.message,
    `record 3 (enrol): enrols p-alice-again with signing key ${publicKeyHex(alice)}, which p-alice enrolled with: one key is one participant`,
  );
  t.true(report.rounds[0].ok, 'the round itself is consistent: the problem is the enrolment');
});

test('a key enrolled again after its revocation, or written in upper case, is still the same key', (t) => {
  const alice = participantIdentity('p-alice');
  const revoked = federationOf([['p-alice', alice]]);
  revoked.append('revoke', { participant: 'p-alice', reason: 'left' });
  revoked.append('enrol', { participant: 'p-alice-2', publicKey: publicKeyHex(alice) });
  const report = verifyRoundLog(revoked.records, options());
  t.deepEqual(codes(report), ['KEY_ALREADY_ENROLLED']);
  t.regex(report.firstFailure!.message, /which p-alice enrolled with \(revoked since\)/);

  const upper = federationOf([['p-alice', alice]]);
  upper.append('enrol', { participant: 'p-alice-2', publicKey: publicKeyHex(alice).toUpperCase() });
  t.deepEqual(codes(verifyRoundLog(upper.records, options())), ['KEY_ALREADY_ENROLLED']);
});

test('an enrolment recording both keys must use their fingerprint as the participant id', (t) => {
  const alice = participantIdentity('p-alice');
  const bob = participantIdentity('p-bob');
  const boxKey = (identity: Identity) => ({ boxKey: Buffer.from(identity.box.publicKey).toString('hex') });
  const honestEnrolments = federationOf([
    [fingerprint(publicIdentity(alice)), alice, boxKey(alice)],
    [fingerprint(publicIdentity(bob)), bob, boxKey(bob)],
  ]);
  t.true(verifyRoundLog(honestEnrolments.records, options()).ok);

  const invented = federationOf([['p-made-up', alice, boxKey(alice)]]);
  const report = verifyRoundLog(invented.records, options());
  t.deepEqual(codes(report), ['PARTICIPANT_ID']);
  t.is(
    report.firstFailure?.message,
    `record 1 (enrol): enrols p-made-up, but the keys it records are those of participant ${fingerprint(publicIdentity(alice))} (the fingerprint of the signing and box keys)`,
  );
});

test('rounds open one at a time and in sequence', (t) => {
  const aborted = indexOf(honest.records, 'round-aborted', 3);
  const records = honest.records.filter((_, i) => i !== aborted);
  const report = verifyRoundLog(resign(records as RoundRecord[], aborted), options());
  // Without the abort, round 4 opens while round 3 is still open.
  t.truthy(
    report.problems.find((p) => p.code === 'ROUND_ORDER' && /while round 3 is still open/.test(p.message)),
  );
});

test('the first record must be the config naming the initial adapter', (t) => {
  const records = resign(honest.records.slice(1).map((r, seq) => ({ ...r, seq })) as RoundRecord[], 0);
  const report = verifyRoundLog(records, options());
  t.is(report.firstFailure?.code, 'FIRST_NOT_CONFIG');
  t.is(report.firstFailure?.seq, 0);
});

test('a record of another federation is detected', (t) => {
  const records = honest.records.map((r) => structuredClone(r));
  records[3].federation = 'someone-else';
  const report = verifyRoundLog(resign(records, 3), options());
  t.deepEqual(codes(report), ['FEDERATION_MISMATCH']);
  t.is(verifyRoundLog(honest.records, { federation: 'other' }).firstFailure?.code, 'FEDERATION_MISMATCH');
});

test('a malformed record is reported and verification goes on', (t) => {
  const records: unknown[] = honest.records.map((r) => structuredClone(r));
  delete (records[2] as Record<string, unknown>).time;
  const report = verifyRoundLog(records, options());
  t.is(report.firstFailure?.code, 'RECORD_SHAPE');
  t.is(report.firstFailure?.seq, 2);
  t.regex(report.firstFailure!.message, /record 2\.time is not a UTC time/);
  // The unreadable enrolment is missing from what follows, and that is reported too.
  t.is(report.records, records.length);
  t.true(codes(report).includes('NOT_ENROLLED') || codes(report).includes('SELECTION_MISMATCH'));
  t.false(codes(report).includes('CHAIN_BROKEN'));
});

test('records are hashed as a whole: the hash of each is its recorded hash', (t) => {
  for (const record of honest.records) t.is(roundRecordHash(record), record.hash);
});

/**
 * Round 2 as a dishonest coordinator rewrites it: `edit` changes the close, the new global
 * adapter is recomputed from the (possibly forged) stored updates so that the aggregate itself
 * matches, and every later record is re-signed.
 */
function rewriteRound2(edit: (body: RoundClosedBody, blobs: Map<string, Map<string, Tensor>>) => void) {
  const blobs = new Map(honest.blobs);
  const records = honest.records.map((r) => structuredClone(r));
  const close = indexOf(records, 'round-closed', 2);
  const body = records[close].body as RoundClosedBody;
  edit(body, blobs);
  const result = aggregateContributions(
    body.rule.name,
    {},
    schema,
    body.updates.map((u) => ({
      participant: u.participant,
      exampleCount: u.exampleCount,
      update: () => tensorValues(blobs.get(u.updateHash)!),
    })),
  );
  const out = tensorsFromValues(schema, result);
  body.globalAdapterOut = hashTensors(out);
  blobs.set(body.globalAdapterOut, out);
  for (const r of records.slice(close + 1)) {
    if (r.kind === 'round-open') r.body.globalAdapter = body.globalAdapterOut;
  }
  return { records: resign(records, close), blobs, close };
}

test('an update the coordinator made up is caught by its envelope: the participant never signed it', (t) => {
  const { records, blobs } = rewriteRound2((body, store) => {
    const forged = tensors(4242);
    const hash = hashTensors(forged);
    store.set(hash, forged);
    body.updates[0].updateHash = hash; // same envelope, other tensors
  });
  const report = verifyRoundLog(records, options(blobs));
  t.deepEqual(codes(report), ['ENVELOPE']);
  t.is(report.firstFailure?.round, 2);
  t.regex(
    report.firstFailure!.message,
    /the participant signed payload sha256:\w+ \(\d+ bytes\), but the stored update serialises to sha256:\w+/,
  );
  t.is(report.rounds[1].aggregation, 'failed');
});

test("an update signed with a key that is not the participant's enrolled key is refused", (t) => {
  const intruder = participantIdentity('intruder');
  const { records, blobs } = rewriteRound2((body, store) => {
    const update = body.updates[0];
    Object.assign(
      update,
      signedUpdate(intruder, {
        federation: FEDERATION,
        round: 2,
        globalAdapterHash: body.globalAdapterIn,
        exampleCount: update.exampleCount,
        tensors: store.get(update.updateHash)!,
      }),
    );
  });
  // The log alone shows it, by the coordinator's admission rule (the coordinator refuses to append
  // it), and so does the audit, which also finds the signature is not over the enrolled key.
  const fromLog = verifyRoundLog(records, options());
  const audited = verifyRoundLog(records, options(blobs));
  for (const report of [fromLog, audited]) {
    t.true(codes(report).length > 0);
    t.true(codes(report).every((c) => c === 'ENVELOPE'));
    t.regex(
      report.firstFailure!.message,
      new RegExp(
        `round 2\\): the envelope of p-\\w+ breaks admission rule UPDATE_PARTICIPANT: envelope\\.participant ${publicKeyHex(intruder)} is not this participant's signing key [0-9a-f]{64}$`,
      ),
    );
  }
  t.true(
    audited.problems.some((p) =>
      new RegExp(`: it is signed by key ${publicKeyHex(intruder)}, not the enrolled key`).test(p.message),
    ),
  );
});

test('an envelope whose signature was altered does not verify', (t) => {
  const { records, blobs } = rewriteRound2((body) => {
    const s = body.updates[1].envelope.signature;
    body.updates[1].envelope.signature = (s[0] === 'a' ? 'b' : 'a') + s.slice(1);
  });
  t.true(verifyRoundLog(records, options()).ok, 'the log alone cannot tell');
  const report = verifyRoundLog(records, options(blobs));
  t.deepEqual(codes(report), ['ENVELOPE']);
  t.regex(report.firstFailure!.message, /its signature is not the participant's signature over the envelope/);
});

test('an envelope for another round, adapter or example count does not match its record', (t) => {
  const { records } = rewriteRound2((body) => {
    body.updates[0].envelope.round = 1;
    body.updates[1].envelope.exampleCount += 1;
    body.updates[1].envelope.globalAdapterHash = digest('elsewhere');
  });
  const messages = verifyRoundLog(records, options()).problems.map((p) => p.message);
  t.true(
    messages.some((m) => /breaks admission rule ROUND_CLOSED: round 1 is not open \(round 2 is\)$/.test(m)),
  );
  t.true(messages.some((m) => /it claims \d+ examples, the record counts \d+$/.test(m)));
  t.true(
    messages.some((m) =>
      /breaks admission rule UPDATE_STALE: envelope\.globalAdapterHash is not the adapter this round trains from$/.test(
        m,
      ),
    ),
  );
});

test("a recorded envelope digest that is not the envelope's is caught with the blobs", (t) => {
  const { records, blobs } = rewriteRound2((body) => {
    body.updates[0].envelopeDigest = digest('another upload');
  });
  const report = verifyRoundLog(records, options(blobs));
  t.deepEqual(codes(report), ['ENVELOPE']);
  t.regex(report.firstFailure!.message, /not the recorded envelopeDigest/);
});

// ---- the log file's lines -------------------------------------------------------------------------

const logBytes = (lines: string[]) => new TextEncoder().encode(lines.map((l) => l + '\n').join(''));

test('a line that is not JSON is a problem naming the line, the record and the round', (t) => {
  const lines = honest.records.map((r) => canonicalJson(r));
  const close = indexOf(honest.records, 'round-closed', 2);
  lines[close] = lines[close].replace('"body":{', '"body":{{');
  const { lines: scanned, torn } = scanRoundLog(logBytes(lines), 'rounds.jsonl');
  t.is(torn, undefined);
  const report = verifyRoundLogLines(scanned, options(honest.blobs));
  t.false(report.ok);
  t.is(report.firstFailure?.code, 'LINE_DAMAGED');
  t.is(report.firstFailure?.round, 2);
  t.is(
    report.firstFailure?.message,
    `line ${close + 1} of the log (record ${close}, round-closed, round 2 by its text): is not valid JSON; the log was damaged or edited`,
  );
  t.false(report.rounds[1].ok);
  t.is(report.records, honest.records.length);
});

test('a record rewritten with other spacing is damage, though its content still hashes right', (t) => {
  const lines = honest.records.map((r) => canonicalJson(r));
  lines[2] = JSON.stringify(honest.records[2], null, 1).replace(/\n/g, '');
  const report = verifyRoundLogLines(scanRoundLog(logBytes(lines)).lines, options(honest.blobs));
  t.deepEqual(codes(report), ['LINE_DAMAGED']);
  t.regex(report.firstFailure!.message, /^line 3 of the log, record 2 \(enrol\): is not in canonical form/);
});

test('the lines of an honest log verify as its records do', (t) => {
  const report = verifyRoundLogLines(
    scanRoundLog(logBytes(honest.records.map((r) => canonicalJson(r)))).lines,
    options(honest.blobs),
  );
  t.true(report.ok, JSON.stringify(report.problems));
  t.deepEqual(report, verifyRoundLog(honest.records, options(honest.blobs)));
});
