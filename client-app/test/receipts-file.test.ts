// The receipts file as the app reads it (receipts.ts): its entries checked when read (a damaged one
// names the file), and the line the member card shows from it.

import test from 'ava';
import nacl from 'tweetnacl';
import { FeditError, signTreeHead } from '@fedit/shared';
import { keptReceiptsLine, parseReceiptsText } from '../src/core/federation/receipts.ts';

const key = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(3));
const head = (size: number) =>
  signTreeHead(
    {
      federation: 'fed',
      size,
      root: `sha256:${String(size % 10).repeat(64)}`,
      time: '2026-12-07T21:00:00.000Z',
    },
    key.secretKey,
  );
const receipt = (round: number, seq: number) => ({
  round,
  seq,
  recordHash: `sha256:${'c'.repeat(64)}`,
  head: head(seq + 1),
});

test('the member card line counts the receipts kept against the updates sent to aggregated rounds', (t) => {
  const file = parseReceiptsText(
    JSON.stringify({ version: 1, receipts: [receipt(1, 6), receipt(2, 9)], heads: [head(7), head(10)] }),
  );
  t.is(
    keptReceiptsLine(file, 3),
    `your 2 of 3 updates are in the signed log (head of size 10, root sha256:000000000000…)`,
  );
  t.is(
    keptReceiptsLine(file, 2),
    `your 2 of 2 updates are in the signed log (head of size 10, root sha256:000000000000…)`,
  );
  t.is(keptReceiptsLine(file, 0), undefined, 'nothing sent yet: no line');
  t.is(keptReceiptsLine({ receipts: [], heads: [] }, 1), undefined, 'no head seen yet: no line');
});

test('a receipts file that is not one is refused naming the file and the entry', (t) => {
  const bad: [unknown, RegExp][] = [
    [{ receipts: 'x', heads: [] }, /not a receipts file/],
    [
      { receipts: [{ ...receipt(1, 6), recordHash: 'x' }], heads: [] },
      /receipts\[0\] is not \{ round, seq, recordHash, head \}/,
    ],
    [
      { receipts: [{ ...receipt(1, 6), head: { ...head(7), size: -1 } }], heads: [] },
      /receipts\[0\]\.head\.size/,
    ],
    [{ receipts: [], heads: [{ ...head(7), root: 'r' }] }, /heads\[0\]\.root/],
  ];
  for (const [value, message] of bad) {
    const error = t.throws(() => parseReceiptsText(JSON.stringify(value), '/home/receipts/fed.json'), {
      instanceOf: FeditError,
    });
    t.is(error.code, 'FEDERATION_HOME');
    t.regex(error.message, /\/home\/receipts\/fed\.json is corrupted/);
    t.regex(error.message, message);
  }
  t.throws(() => parseReceiptsText('{', 'f.json'), { message: /f\.json is corrupted/ });
});
