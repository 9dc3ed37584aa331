// The coordinator's index is a projection of the fold over the round log: rebuilt from the log at
// start, or kept up to date record by record, it says the same, and what a lost index held comes
// back from the log alone.

import test from 'ava';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import {
  signRoundRecord,
  ZERO_HASH,
  type RecordedEnvelope,
  type RoundRecord,
  type UnsignedRoundRecord,
} from '@fedit/shared';
import { CoordinatorIndex } from '../src/index.ts';

const key = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(9));
const hashOf = (c: string) => `sha256:${c.repeat(64)}`;

/** Signed records in a chain (the index trusts the log it is given: the log was verified first). */
function chain(drafts: Pick<UnsignedRoundRecord, 'kind' | 'body' | 'round'>[]): RoundRecord[] {
  const records: RoundRecord[] = [];
  drafts.forEach((draft, seq) => {
    const time = new Date(Date.UTC(2026, 5, 1, 8, 0, seq)).toISOString();
    const prevHash = records.at(-1)?.hash ?? ZERO_HASH;
    const unsigned = { ...draft, seq, federation: 'fed', prevHash, time } as UnsignedRoundRecord;
    records.push(signRoundRecord(unsigned, key.secretKey));
  });
  return records;
}

const envelope = { version: 1 } as RecordedEnvelope; // the index reads no envelope field
const selection = { seed: 's', fraction: '1', minimum: 1, selected: ['p1', 'p2'] };
const rule = { name: 'fedit', config: {} };
const DEADLINE = '2026-06-02T00:00:00.000Z';
const records = chain([
  { kind: 'config', round: 0, body: { settings: {}, globalAdapter: hashOf('0') } },
  { kind: 'enrol', round: 0, body: { participant: 'p1', publicKey: 'k1', boxKey: 'b1', displayName: 'Ann' } },
  { kind: 'enrol', round: 0, body: { participant: 'p2', publicKey: 'k2' } },
  { kind: 'round-open', round: 1, body: { rule, selection, globalAdapter: hashOf('0'), deadline: DEADLINE } },
  {
    kind: 'round-closed',
    round: 1,
    body: {
      rule,
      selection,
      updates: [
        {
          participant: 'p1',
          envelopeDigest: hashOf('e'),
          exampleCount: 3,
          updateHash: hashOf('1'),
          envelope,
        },
      ],
      globalAdapterIn: hashOf('0'),
      globalAdapterOut: hashOf('a'),
      dropped: [{ participant: 'p2', reason: 'late' }],
      metrics: { examples: 3 },
    },
  },
  { kind: 'revoke', round: 1, body: { participant: 'p2', reason: 'left' } },
  {
    kind: 'round-open',
    round: 2,
    body: {
      rule,
      selection: { ...selection, selected: ['p1'] },
      globalAdapter: hashOf('a'),
      deadline: DEADLINE,
    },
  },
  { kind: 'round-aborted', round: 2, body: { reason: 'too few updates', dropped: [] } },
]);

test('the index rebuilt from the log equals the index kept record by record, and survives its loss', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-index-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const live = await CoordinatorIndex.open(join(dir, 'live.json'), records.slice(0, 1));
  for (const record of records.slice(1)) live.apply(record);
  const rebuilt = await CoordinatorIndex.open(join(dir, 'rebuilt.json'), records);
  t.deepEqual(live.data, rebuilt.data);

  t.deepEqual(rebuilt.data.participants.p1, {
    id: 'p1',
    signKey: 'k1',
    boxKey: 'b1',
    displayName: 'Ann',
    enrolledAt: records[1].time,
  });
  t.deepEqual(rebuilt.data.participants.p2.revoked, { at: records[5].time, reason: 'left' });
  t.deepEqual(
    rebuilt.data.rounds.map((r) => [r.round, r.status, r.counted, r.globalAdapterOut, r.reason]),
    [
      [1, 'closed', ['p1'], hashOf('a'), undefined],
      [2, 'aborted', [], undefined, 'too few updates'],
    ],
  );

  // A damaged index file is set aside and the index rebuilt from the log. (Under ava, lowdb keeps
  // the index in memory: NODE_ENV is 'test'.)
  const path = join(dir, 'index.json');
  writeFileSync(path, '{ not json');
  const recovered = await CoordinatorIndex.open(path, records);
  t.deepEqual(recovered.data, live.data);
  t.true(readdirSync(dir).some((name) => name.startsWith('index.json.damaged-')));
});
