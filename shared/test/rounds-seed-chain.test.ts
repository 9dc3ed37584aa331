// Selection seeds the coordinator cannot choose (seed-chain.ts): the config record commits to
// H^N(s), each round-open record reveals the next value back along the chain and derives its seed
// from it, and the audit refuses a wrong, reused or missing reveal and a seed not derived from it.

import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import {
  createSeedChain,
  drawSelection,
  seedChainLength,
  seedChainReveal,
  seedChainStep,
  seedChainWalk,
  seedFromReveal,
  signRoundRecord,
  verifyRoundLog,
  ZERO_HASH,
  type RoundOpenBody,
  type RoundRecord,
  type RoundRecordBodies,
  type RoundRecordKind,
  type SeedChain,
  type UnsignedRoundRecord,
} from '@fedit/shared';

const coordinator = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(3));
const options = { coordinatorPublicKey: coordinator.publicKey };
const PARTICIPANTS = ['p-alice', 'p-bob', 'p-carol', 'p-dave', 'p-erin'];
const ADAPTER = `sha256:${'a'.repeat(64)}`;
const SETTINGS = { fraction: '0.4', minimum: 2 };

/** Chained, signed records as a coordinator writes them, with a seed chain or without. */
class Writer {
  readonly records: RoundRecord[] = [];
  #round = 0;
  #opens = 0;
  #time = Date.parse('2026-05-01T08:00:00.000Z');

  constructor(readonly chain?: SeedChain) {
    this.append('config', {
      settings: { baseModel: 'tiny' },
      globalAdapter: ADAPTER,
      ...(chain && { seedChain: { commitment: chain.commitment, length: chain.length } }),
    });
    for (const participant of PARTICIPANTS)
      this.append('enrol', { participant, publicKey: `key-${participant}` });
  }

  append<K extends RoundRecordKind>(kind: K, body: RoundRecordBodies[K]): RoundRecord {
    if (kind === 'round-open') this.#round++;
    const record = signRoundRecord(
      {
        seq: this.records.length,
        federation: 'seeds',
        round: this.#round,
        kind,
        prevHash: this.records.at(-1)?.hash ?? ZERO_HASH,
        time: new Date((this.#time += 1000)).toISOString(),
        body,
      } as UnsignedRoundRecord,
      coordinator.secretKey,
    );
    this.records.push(record);
    return record;
  }

  /** The next round-open body as an honest coordinator draws it; `edit` makes it dishonest. */
  open(edit: (body: RoundOpenBody) => void = () => {}): RoundOpenBody {
    const index = ++this.#opens;
    // Past the chain's end there is no true value: the edit must supply one.
    const reveal = this.chain && (seedChainReveal(this.chain, index) ?? randomBytes(32).toString('hex'));
    const source = reveal ? { reveal } : `seed-${index}`;
    const { selection, quorum } = drawSelection(source, PARTICIPANTS, SETTINGS);
    const body: RoundOpenBody = {
      rule: { name: 'fedit', config: {} },
      selection,
      globalAdapter: ADAPTER,
      deadline: '2026-06-01T00:00:00.000Z',
      quorum,
    };
    edit(body);
    this.append('round-open', body);
    return body;
  }

  abort(): void {
    this.append('round-aborted', { reason: 'no updates', dropped: [] });
  }
}

const fixedChain = (length = 10) => createSeedChain(length, new Uint8Array(32).fill(7));
const codes = (records: RoundRecord[]) => verifyRoundLog(records, options).problems.map((p) => p.code);

test('the chain and the seed are the arithmetic the header writes (vector from Python hashlib)', (t) => {
  // H = lambda x: sha256(b"fedit/seed-chain/v1" + x).digest(); s = bytes([7]) * 32; N = 3
  const chain = createSeedChain(3, new Uint8Array(32).fill(7));
  t.is(chain.commitment, '91ef9cf5d90742cd1e72785407e65aa5e6401f0eafbfb877f8f00691b5759ff2');
  const v1 = seedChainReveal(chain, 1)!;
  t.is(v1, '7b1f741a1e4b7b530fd87a0b51bb87c12961a2d12c4d605a1b235e1c368ef56f');
  t.is(seedFromReveal(v1), '8e434236099b15f43f001255f2e577ba6ba3f1286bb69eafc81188a39005f985');
  // The same from node:crypto written out, step by step: H(v_j) = v_(j-1), v_0 = c.
  const h = (hex: string) =>
    createHash('sha256').update('fedit/seed-chain/v1').update(Buffer.from(hex, 'hex')).digest('hex');
  t.is(h(v1), chain.commitment);
  t.is(h(seedChainReveal(chain, 2)!), v1);
  t.is(seedChainReveal(chain, 3), chain.secret);
  t.is(seedChainReveal(chain, 4), undefined, 'spent after N reveals');
  t.is(seedChainReveal(chain, 0), undefined);
  t.is(seedChainLength(10), 10 * 8 + 64);
});

test('an honest log with a chain verifies, aborted rounds included, and says its seeds were committed', (t) => {
  const w = new Writer(fixedChain());
  w.open();
  w.abort();
  const second = w.open();
  w.abort();
  w.open();
  const report = verifyRoundLog(w.records, options);
  t.deepEqual(report.problems, []);
  t.is(report.selectionSeeds, 'committed');
  t.is(second.selection.reveal, seedChainWalk(fixedChain().secret, 10 - 2), 'the retry reveals v_2');
  t.is(second.selection.seed, seedFromReveal(second.selection.reveal!));
});

test('a log without a commitment verifies as before, and says its seeds were unconstrained', (t) => {
  const w = new Writer();
  w.open();
  w.abort();
  w.open();
  const report = verifyRoundLog(w.records, options);
  t.true(report.ok, JSON.stringify(report.problems));
  t.is(report.selectionSeeds, 'unconstrained');
});

test('the audit rejects a reveal that is not the next value of the chain', (t) => {
  const w = new Writer(fixedChain());
  w.open();
  w.abort();
  // v_3 where v_2 is due (skipping a value to draw the seed after it), and a random value.
  const chain = fixedChain();
  w.open((b) =>
    Object.assign(b, drawSelection({ reveal: seedChainReveal(chain, 3)! }, PARTICIPANTS, SETTINGS)),
  );
  const report = verifyRoundLog(w.records, options);
  t.is(report.firstFailure?.code, 'SEED_REVEAL');
  t.regex(report.firstFailure!.message, /is not the next value of the committed seed chain/);

  const other = new Writer(fixedChain());
  const reveal = randomBytes(32).toString('hex');
  other.open((b) => Object.assign(b, drawSelection({ reveal }, PARTICIPANTS, SETTINGS)));
  t.deepEqual(codes(other.records), ['SEED_REVEAL']);
});

test('the audit rejects a reused reveal', (t) => {
  const w = new Writer(fixedChain());
  const first = w.open();
  w.abort();
  w.open((b) => {
    b.selection = { ...first.selection };
  });
  const report = verifyRoundLog(w.records, options);
  t.is(report.firstFailure?.code, 'SEED_REVEAL');
  t.regex(report.firstFailure!.message, /repeats the value an earlier round-open record revealed/);
});

test('the audit rejects a seed that is not derived from the reveal, and a missing reveal', (t) => {
  const w = new Writer(fixedChain());
  w.open((b) => {
    // The right reveal, but a seed of the coordinator's choosing (and the draw that seed gives).
    const { selection } = drawSelection('my favourite seed', PARTICIPANTS, SETTINGS);
    b.selection = { ...selection, reveal: b.selection.reveal! };
  });
  const report = verifyRoundLog(w.records, options);
  t.deepEqual(
    report.problems.map((p) => p.code),
    ['SEED_NOT_DERIVED'],
  );
  t.regex(
    report.firstFailure!.message,
    /its seed is "my favourite seed", but its reveal fixes the seed [0-9a-f]{64}/,
  );

  const missing = new Writer(fixedChain());
  missing.open((b) => {
    Object.assign(b, drawSelection('chosen', PARTICIPANTS, SETTINGS));
  });
  t.deepEqual(codes(missing.records), ['SEED_REVEAL']);
  t.regex(verifyRoundLog(missing.records, options).firstFailure!.message, /reveals no seed chain value/);
});

test('one bad reveal is reported once: the next honest record checks against the last good value', (t) => {
  const w = new Writer(fixedChain());
  w.open((b) => Object.assign(b, drawSelection({ reveal: 'ab'.repeat(32) }, PARTICIPANTS, SETTINGS)));
  w.abort();
  w.open(); // reveals v_2, which is H^2-away from the commitment
  t.deepEqual(codes(w.records), ['SEED_REVEAL']);
});

test('the chain is spent after N round-open records, and a later config record cannot start a new one', (t) => {
  const w = new Writer(fixedChain(1));
  w.open();
  w.abort();
  w.open();
  t.regex(verifyRoundLog(w.records, options).firstFailure!.message, /covers 1: the chain is spent/);

  const late = new Writer();
  const chain = createSeedChain(5);
  late.append('config', { settings: {}, seedChain: { commitment: chain.commitment, length: chain.length } });
  const report = verifyRoundLog(late.records, options);
  t.deepEqual(
    report.problems.map((p) => p.code),
    ['SEED_REVEAL'],
  );
  t.regex(report.firstFailure!.message, /only the first config record may/);
  t.is(report.selectionSeeds, 'unconstrained');
});

test('grinding is impossible: of K candidate reveals for a round, only the chain value passes', (t) => {
  // A coordinator that wants another draw for round-open 2 needs a second value whose hash is v_1.
  // Property over K tries: every candidate but the true v_2 is refused, so the seed and the
  // selection of every round are the ones fixed at init.
  const chain = fixedChain();
  const K = 16; // each try signs and verifies a whole log (tweetnacl: ~0.4 s); the near misses below matter more
  const truth = seedChainReveal(chain, 2)!;
  const v1 = seedChainReveal(chain, 1)!;
  const candidates = [truth, ...Array.from({ length: K - 1 }, () => randomBytes(32).toString('hex'))];
  // Near misses too: v_2 with one bit flipped, and values elsewhere on the chain.
  candidates.push(
    (BigInt(`0x${truth}`) ^ 1n).toString(16).padStart(64, '0'),
    v1,
    chain.secret,
    chain.commitment,
  );
  const accepted = candidates.filter((reveal) => {
    const w = new Writer(chain);
    w.open();
    w.abort();
    w.open((b) => Object.assign(b, drawSelection({ reveal }, PARTICIPANTS, SETTINGS)));
    return verifyRoundLog(w.records, options).ok;
  });
  t.deepEqual(accepted, [truth]);
  t.is(seedChainStep(truth), v1);
  // The sequence of seeds is a function of the commitment's secret alone, whatever the coordinator does.
  const seeds = (w: Writer) =>
    w.records.flatMap((r) => (r.kind === 'round-open' ? [r.body.selection.seed] : []));
  const a = new Writer(chain);
  a.open();
  a.abort();
  a.open();
  t.deepEqual(
    seeds(a),
    [1, 2].map((j) => seedFromReveal(seedChainReveal(chain, j)!)),
  );
});
