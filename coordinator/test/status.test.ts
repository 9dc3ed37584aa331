// `fedit coordinator status`: the round timeline as the log tells it, a dropped participant with
// its reason, an aborted round, a round still open, and the held-out means of a closed round.

import test from 'ava';
import type { RoundRecord } from '@fedit/shared';
import { formatFederationStatus, statusOfRecords } from '../src/federation/status.ts';

const ALICE = 'a1'.repeat(16);
const BOB = 'b2'.repeat(16);
const selection = { seed: 's', fraction: '1', minimum: 2, selected: [ALICE, BOB] };
const rule = { name: 'fedit', config: {} };
const at = (minute: number) => `2026-03-01T08:${String(minute).padStart(2, '0')}:00.000Z`;

// statusOfRecords reads what a log holds and verifies nothing (`fedit audit` does), so these
// records need no hashes or signatures.
const records = [
  { kind: 'config', round: 0, body: { settings: {} } },
  { kind: 'enrol', round: 0, body: { participant: ALICE, publicKey: 'k1', displayName: 'alice' } },
  { kind: 'enrol', round: 0, body: { participant: BOB, publicKey: 'k2' } },
  {
    kind: 'round-open',
    round: 1,
    body: {
      rule,
      selection: { ...selection, ready: [ALICE, BOB] },
      globalAdapter: 'g0',
      deadline: at(59),
      quorum: 2,
    },
  },
  {
    kind: 'round-closed',
    round: 1,
    body: {
      rule,
      selection,
      updates: [{ participant: ALICE, exampleCount: 7 }],
      globalAdapterIn: 'g0',
      globalAdapterOut: 'g1',
      dropped: [{ participant: BOB, reason: 'disconnected, no update before the deadline' }],
      metrics: {},
      heldOut: {
        reports: 1,
        examples: 2,
        meanLoss: '1.500000',
        exactMatchExamples: 2,
        exactMatch: '0.500000',
      },
    },
  },
  { kind: 'round-open', round: 2, body: { rule, selection, globalAdapter: 'g1', deadline: at(59) } },
  {
    kind: 'round-aborted',
    round: 2,
    body: { reason: '0 update(s) counted, fewer than the 2 the federation requires', dropped: [] },
  },
  { kind: 'round-open', round: 3, body: { rule, selection, globalAdapter: 'g1', deadline: at(59) } },
].map((r, seq) => ({
  ...r,
  seq,
  federation: 'f',
  prevHash: '',
  time: at(seq),
  hash: `h${seq}`,
  signature: '',
})) as unknown as RoundRecord[];

test('the timeline names who was selected, ready, counted and dropped, and the held-out means', (t) => {
  const status = statusOfRecords(records);
  t.is(status.head, 'h7');
  t.deepEqual(
    status.rounds.map((r) => [
      r.round,
      r.outcome,
      r.selected.length,
      r.ready?.length,
      r.counted.length,
      r.dropped.length,
    ]),
    [
      [1, 'aggregated', 2, 2, 1, 1],
      [2, 'aborted', 2, undefined, 0, 0],
      [3, 'open', 2, undefined, 0, 0],
    ],
  );
  const text = formatFederationStatus(status);
  t.regex(text, /^federation f: 2 participant\(s\), 3 round\(s\)$/m);
  t.regex(text, /^ {2}ready {5}2: a1a1a1a1 \(alice\), b2b2b2b2$/m);
  t.regex(text, /^ {2}quorum {4}2 updates$/m);
  t.regex(text, /^ {2}counted {3}1: a1a1a1a1 \(alice\) 7 examples$/m);
  t.regex(text, /^ {2}dropped {3}b2b2b2b2: disconnected, no update before the deadline$/m);
  t.regex(
    text,
    /^ {2}held-out {2}loss 1\.500000 over 2 examples from 1 participant\(s\), exact match 0\.500000 \(2 examples\)/m,
  );
  t.regex(text, /^round 2 {2}aborted .*\n(?:.*\n)* {2}aborted {3}0 update\(s\) counted/m);
  t.regex(text, /^round 3 {2}open {2}2026-03-01T08:07:00\.000Z$/m);
});
