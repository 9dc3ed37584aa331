// Participant selection is a pure function of the seed the round record carries, defined so that
// another implementation re-derives it from the comment in selection.ts alone.

import test from 'ava';
import { createHash } from 'node:crypto';
import {
  drawSelection,
  factorString,
  fractionString,
  overSelectedSize,
  roundQuorum,
  RoundLogError,
  selectionSize,
  selectParticipants,
} from '@fedit/shared';

const ids = Array.from({ length: 30 }, (_, i) => `participant-${String(i).padStart(2, '0')}`);

/** The algorithm written out again from its specification, for comparison. */
function reference(seed: string, eligible: string[], k: number): string[] {
  const sorted = [...eligible].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const words: number[] = [];
  let block = 0;
  const next = () => {
    if (words.length === 0) {
      const counter = Buffer.alloc(8);
      counter.writeBigUInt64BE(BigInt(block++));
      const digest = createHash('sha256')
        .update(Buffer.concat([Buffer.from('fedit/select/v1'), counter, Buffer.from(seed, 'utf8')]))
        .digest();
      for (let i = 0; i < 8; i++) words.push(digest.readUInt32BE(4 * i));
    }
    return words.shift()!;
  };
  for (let i = 0; i < k; i++) {
    const m = sorted.length - i;
    let x: number;
    do x = next();
    while (x >= 2 ** 32 - (2 ** 32 % m));
    const j = i + (x % m);
    [sorted[i], sorted[j]] = [sorted[j], sorted[i]];
  }
  return sorted.slice(0, k).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

test('selects ceil(n * fraction) participants, sorted, as the specification derives them', (t) => {
  for (const seed of ['a', 'round-7', 'ff'.repeat(32)]) {
    const selected = selectParticipants(seed, ids, 0.25, 2);
    t.is(selected.length, 8);
    t.deepEqual(selected, reference(seed, ids, 8));
    t.deepEqual(selected, [...selected].sort());
    t.is(new Set(selected).size, 8);
  }
});

test('the same seed selects the same participants whatever order the ids come in', (t) => {
  const shuffled = [...ids].reverse();
  t.deepEqual(selectParticipants('s', shuffled, 0.5, 1), selectParticipants('s', ids, 0.5, 1));
  t.notDeepEqual(selectParticipants('s', ids, 0.5, 1), selectParticipants('t', ids, 0.5, 1));
});

test('takes the fraction as its exact decimal value: 0.07 of 100 is 7, not 8', (t) => {
  // 0.07 * 100 in binary64 is 7.000000000000001, whose ceiling is 8.
  t.is(Math.ceil(0.07 * 100), 8);
  t.is(selectionSize(100, 0.07, 0), 7);
  t.is(selectionSize(100, '0.07', 0), 7);
  t.is(selectionSize(50, 0.14, 0), 7);
  t.is(selectionSize(7, 0.7, 0), 5);
  t.is(selectionSize(10, 1, 0), 10);
  t.is(selectionSize(3, '0.0000001', 0), 1);
});

test('the minimum raises the count, and fewer eligible than the minimum selects all', (t) => {
  t.is(selectionSize(30, 0.1, 5), 5);
  t.deepEqual(selectParticipants('x', ids.slice(0, 3), 0.5, 5), ids.slice(0, 3));
  t.deepEqual(selectParticipants('x', [], 0.5, 5), []);
});

test('every participant is about equally likely to be selected', (t) => {
  const counts = new Map(ids.slice(0, 10).map((id) => [id, 0]));
  const draws = 3000;
  for (let s = 0; s < draws; s++) {
    for (const id of selectParticipants(`seed-${s}`, ids.slice(0, 10), 0.3, 0))
      counts.set(id, counts.get(id)! + 1);
  }
  // Expected 900 each; 5 standard deviations is about 125.
  for (const [id, count] of counts) t.true(Math.abs(count - 900) < 125, `${id}: ${count}`);
});

test('refuses duplicate ids, bad fractions and bad minimums', (t) => {
  const isSelectionError = (err: unknown) => err instanceof RoundLogError && err.code === 'ROUND_SELECTION';
  t.true(isSelectionError(t.throws(() => selectParticipants('s', ['a', 'b', 'a'], 0.5, 1))));
  for (const fraction of [0, 1.5, -0.5, NaN, '1/2', '', '0.5 ']) {
    t.true(isSelectionError(t.throws(() => selectParticipants('s', ids, fraction, 1))), String(fraction));
  }
  t.true(isSelectionError(t.throws(() => selectParticipants('s', ids, 0.5, -1))));
  t.true(isSelectionError(t.throws(() => selectParticipants('s', ids, 0.5, 1.5))));
  t.true(isSelectionError(t.throws(() => selectParticipants('', ids, 0.5, 1))));
});

test('fractionString writes the plain decimal records carry', (t) => {
  t.is(fractionString(0.1), '0.1');
  t.is(fractionString(1), '1');
  t.is(fractionString(1e-7), '0.0000001');
  t.is(fractionString('0.50'), '0.5');
  t.is(fractionString(0.3333), '0.3333');
});

test('over-selection: s = min(n, ceil(k * factor)) with the factor exact, drawn as the specification derives it', (t) => {
  // k = 8 of 30: 8 * 1.3 = 10.4, so 11. 50 * 1.1 = 55 exactly, where binary64 gives
  // 55.00000000000001 and a ceil of 56.
  t.is(overSelectedSize(8, 30, '1.3'), 11);
  t.is(overSelectedSize(50, 100, 1.1), 55);
  t.is(Math.ceil(50 * 1.1), 56, 'the binary64 product would over-select one more');
  t.is(overSelectedSize(10, 12, '1.3'), 12, 'at most the candidates');
  t.is(overSelectedSize(3, 30, 1), 3);
  for (const seed of ['a', 'round-7']) {
    const selected = selectParticipants(seed, ids, 0.25, 2, '1.3');
    t.deepEqual(selected, reference(seed, ids, 11));
  }
  // Without a factor (logs written before over-selection) the draw is today's.
  t.deepEqual(selectParticipants('s', ids, 0.25, 2), reference('s', ids, 8));
  t.true(t.throws(() => overSelectedSize(2, 5, '0.9')) instanceof RoundLogError);
  t.is(factorString(1.3), '1.3');
  t.is(factorString('2.50'), '2.5');
  t.is(factorString(1), '1');
});

test("drawSelection records the ready set, the factor and the quorum: the target, or the config's", (t) => {
  const ready = [...ids.slice(0, 10)].reverse();
  const { selection, quorum } = drawSelection('seed', ready, { fraction: 0.5, minimum: 2 });
  t.deepEqual(selection.ready, ids.slice(0, 10), 'sorted');
  t.is(selection.overSelection, '1.3', 'the default factor');
  t.is(selection.fraction, '0.5');
  // k = ceil(10 * 0.5) = 5, s = ceil(5 * 1.3) = 7, quorum = k.
  t.deepEqual(selection.selected, reference('seed', ids.slice(0, 10), 7));
  t.is(quorum, 5);
  t.is(drawSelection('seed', ready, { fraction: 0.5, minimum: 2, quorum: 6 }).quorum, 6);
  t.is(drawSelection('seed', ready, { fraction: 0.5, minimum: 2, quorum: 9 }).quorum, 7, 'at most s');
  t.is(roundQuorum(5, 3), 3);
  // Two ready of a minimum of 2: both selected, the round closes when both are counted.
  const small = drawSelection('x', ids.slice(0, 2), { fraction: 1, minimum: 2 });
  t.is(small.selection.selected.length, 2);
  t.is(small.quorum, 2);
});
