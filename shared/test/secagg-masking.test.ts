// One in-memory secure-aggregation round (secagg/masking.ts, graph.ts): the unmasked sum equals the
// plain modular sum exactly, with and without dropouts after masking, over the complete graph and
// SecAgg+ graphs; a masked input does not correlate with its input; holders refuse a coordinator
// that asks for both kinds of share of one participant; below the threshold nothing is unmasked.
// The graph vector comes from a Python re-implementation of graph.ts's header run here.

import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import {
  addModular,
  completeGraph,
  createParticipant,
  decodeWeightedMean,
  encodeUpdate,
  maskInput,
  plainSum,
  SecAggError,
  secAggPlusDegree,
  secAggPlusGraph,
  shareSecrets,
  ShareHolder,
  unmaskSum,
  type HeldShares,
  type MaskGraph,
  type SecAggParticipant,
  type SecAggRound,
} from '@fedit/shared';

const sha = (s: string) => new Uint8Array(createHash('sha256').update(s).digest());
const randomWords = (n: number) => new Uint32Array(new Uint8Array(randomBytes(n * 4)).buffer);

interface Setup {
  round: SecAggRound;
  people: SecAggParticipant[];
  inputs: Map<number, Uint32Array>;
  holders: Map<number, ShareHolder>;
}

function setUp(ids: number[], graph: MaskGraph, threshold: number, length: number): Setup {
  const people = ids.map((id) => createParticipant(id));
  const round: SecAggRound = {
    round: 12,
    graph,
    threshold,
    length,
    publicKeys: new Map(people.map((p) => [p.id, p.publicKey])),
  };
  const held = new Map<number, Map<number, HeldShares>>(ids.map((id) => [id, new Map()]));
  for (const p of people) for (const [h, s] of shareSecrets(round, p)) held.get(h)?.set(p.id, s);
  const holders = new Map(ids.map((id) => [id, new ShareHolder(id, held.get(id) ?? new Map(), threshold)]));
  return { round, people, inputs: new Map(ids.map((id) => [id, randomWords(length)])), holders };
}

/** Everyone masks; `dropped` never deliver; the survivors answer the unmasking request. */
function runRound(s: Setup, dropped: Set<number>): { sum: Uint32Array; expected: Uint32Array } {
  const masked = new Map<number, Uint32Array>();
  for (const p of s.people) {
    const y = maskInput(s.round, p, s.inputs.get(p.id) as Uint32Array);
    if (!dropped.has(p.id)) masked.set(p.id, y);
  }
  const survivors = [...masked.keys()];
  const reveals = survivors.map((id) => s.holders.get(id)?.reveal(survivors, [...dropped]));
  const sum = unmaskSum(
    s.round,
    masked,
    reveals.filter((r) => r !== undefined),
  );
  const expected = plainSum(
    survivors.map((id) => s.inputs.get(id) as Uint32Array),
    s.round.length,
  );
  return { sum, expected };
}

test('the SecAgg+ graph equals the Python re-implementation and is symmetric and k-regular', (t) => {
  const ids = [3, 10, 11, 20, 25, 40, 41, 50, 77, 90];
  const graph = secAggPlusGraph([...ids].reverse(), 4, sha('fedit test graph'));
  const python: Record<number, number[]> = {
    40: [10, 11, 20, 50],
    20: [10, 11, 40, 77],
    11: [3, 20, 40, 77],
    77: [3, 11, 20, 25],
    3: [11, 25, 77, 90],
    25: [3, 41, 77, 90],
    90: [3, 25, 41, 50],
    41: [10, 25, 50, 90],
    50: [10, 40, 41, 90],
    10: [20, 40, 41, 50],
  };
  for (const id of ids) t.deepEqual(graph.get(id), python[id]);
  const big = secAggPlusGraph(
    Array.from({ length: 200 }, (_, i) => i * 3),
    secAggPlusDegree(200),
    sha('big'),
  );
  t.is(secAggPlusDegree(200), 16);
  for (const [id, neighbours] of big) {
    t.is(neighbours.length, 16);
    for (const j of neighbours) t.true(big.get(j)?.includes(id));
  }
  t.notDeepEqual(secAggPlusGraph(ids, 4, sha('other')), graph);
  t.deepEqual(secAggPlusGraph(ids, 10, sha('x')), completeGraph(ids));
});

test('complete graph: the unmasked sum is the plain modular sum, with no dropout and with two', (t) => {
  const ids = [1, 2, 5, 9, 14, 20];
  const setup = setUp(ids, completeGraph(ids), 3, 257);
  const all = runRound(setup, new Set());
  t.deepEqual(all.sum, all.expected);
  const again = setUp(ids, completeGraph(ids), 3, 257);
  const some = runRound(again, new Set([5, 20]));
  t.deepEqual(some.sum, some.expected);
});

test('SecAgg+ graph of 30 with degree 6: exact sums with 0, 3 and 8 dropouts', (t) => {
  const ids = Array.from({ length: 30 }, (_, i) => 100 + i * 7);
  const graph = secAggPlusGraph(ids, 6, sha('round graph'));
  for (const dropped of [[], [100, 163, 226], [100, 107, 114, 121, 128, 135, 142, 149]]) {
    const result = runRound(setUp(ids, graph, 4, 64), new Set(dropped));
    t.deepEqual(result.sum, result.expected, `dropped ${dropped.join(',')}`);
  }
});

test('end to end with fixed point: the unmasked mean is the weighted mean of the survivors', (t) => {
  const ids = [1, 2, 3, 4, 5, 6, 7];
  const cfg = { clipRange: 1, scaleBits: 20, maxParticipants: 7, maxWeight: 100 };
  const updates = ids.map(() => Float32Array.from({ length: 50 }, () => Math.random() - 0.5));
  const weights = ids.map((id) => id * 10);
  const setup = setUp(ids, secAggPlusGraph(ids, 4, sha('e2e')), 3, 51);
  ids.forEach((id, k) =>
    setup.inputs.set(id, encodeUpdate(updates[k], weights[k], cfg, new Uint8Array(randomBytes(32)))),
  );
  const { sum, expected } = runRound(setup, new Set([4]));
  t.deepEqual(sum, expected);
  const mean = decodeWeightedMean(sum, 6, cfg);
  const kept = ids.map((_, k) => k).filter((k) => ids[k] !== 4);
  const total = kept.reduce((a, k) => a + weights[k], 0);
  for (let i = 0; i < 50; i++) {
    const exact = kept.reduce((a, k) => a + weights[k] * updates[k][i], 0) / total;
    t.true(Math.abs(mean[i] - exact) < 6 / 2 ** 20 / 100 + 1e-7, `coordinate ${i}`);
  }
});

test('a masked input neither equals nor correlates with its input over 10^4 coordinates', (t) => {
  const ids = [1, 2, 3, 4];
  const setup = setUp(ids, completeGraph(ids), 2, 10_000);
  // A structured input (a ramp), so a mask that leaked it would show.
  const x = Uint32Array.from({ length: 10_000 }, (_, i) => i * 400_000);
  const y = maskInput(setup.round, setup.people[0], x);
  let same = 0;
  for (let i = 0; i < x.length; i++) if (x[i] === y[i]) same++;
  t.true(same < 5);
  const mean = (a: Uint32Array) => a.reduce((s, v) => s + v, 0) / a.length;
  const [mx, my] = [mean(x), mean(y)];
  let [sxy, sxx, syy] = [0, 0, 0];
  for (let i = 0; i < x.length; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  t.true(Math.abs(sxy / Math.sqrt(sxx * syy)) < 0.05);
  // The difference of two participants' masked inputs is no less masked.
  const y2 = maskInput(setup.round, setup.people[1], x);
  t.notDeepEqual(y, y2);
});

test('holders refuse to reveal both kinds of share of one participant, in one request or two', (t) => {
  const ids = [1, 2, 3, 4, 5];
  const setup = setUp(ids, completeGraph(ids), 3, 8);
  const holder = setup.holders.get(1) as ShareHolder;
  t.throws(() => holder.reveal([1, 2, 3, 4], [4, 5]), {
    instanceOf: SecAggError,
    message: /participant 4 is named both/,
  });
  const first = holder.reveal([1, 2, 3, 4], [5]);
  t.is(first.self.size, 4);
  t.is(first.key.size, 1);
  t.throws(() => holder.reveal([1, 2, 3, 5], [4]), {
    message: /already revealed participant 5's key share; refusing its self share/,
  });
  t.notThrows(() => holder.reveal([1, 2, 3, 4], [5]));
  t.throws(() => (setup.holders.get(2) as ShareHolder).reveal([1, 2], [3, 4, 5]), {
    message: /2 survivors, below the threshold 3/,
  });
});

test('below the threshold the round is refused; forged and misplaced shares are caught', (t) => {
  const ids = [1, 2, 3, 4, 5];
  const setup = setUp(ids, completeGraph(ids), 4, 8);
  const masked = new Map(
    setup.people
      .slice(0, 3)
      .map((p) => [p.id, maskInput(setup.round, p, setup.inputs.get(p.id) as Uint32Array)]),
  );
  t.throws(() => unmaskSum(setup.round, masked, []), { message: /3 survivors, below the threshold 4/ });
  const four = new Map(
    setup.people
      .slice(0, 4)
      .map((p) => [p.id, maskInput(setup.round, p, setup.inputs.get(p.id) as Uint32Array)]),
  );
  const reveals = [1, 2, 3, 4].map((h) => (setup.holders.get(h) as ShareHolder).reveal([1, 2, 3, 4], [5]));
  // Holder 2 passes off holder 1's share of participant 5's key as its own.
  const swapped = reveals.map((r) => (r.holder === 2 ? { ...r, key: reveals[0].key } : r));
  t.throws(() => unmaskSum(setup.round, four, swapped), {
    message: /holder 2's key share of 5 is not at its evaluation point/,
  });
  t.throws(() => unmaskSum(setup.round, four, reveals.slice(0, 3)), {
    message: /3 self shares of participant 1, below the threshold 4/,
  });
  const sum = unmaskSum(setup.round, four, reveals);
  t.deepEqual(
    sum,
    plainSum(
      [1, 2, 3, 4].map((id) => setup.inputs.get(id) as Uint32Array),
      8,
    ),
  );
  const extra = new Uint32Array(8);
  addModular(extra, sum);
  t.throws(() => unmaskSum(setup.round, new Map([...four, [99, extra]]), reveals), {
    message: /outside the round/,
  });
});

test('round descriptions and graphs are refused with the field named', (t) => {
  const ids = [1, 2, 3];
  const setup = setUp(ids, completeGraph(ids), 2, 4);
  const p = setup.people[0];
  const x = new Uint32Array(4);
  t.throws(() => maskInput({ ...setup.round, threshold: 4 }, p, x), {
    message: /threshold must be an integer from 2 to 3/,
  });
  const lopsided = new Map([
    [1, [2, 3]],
    [2, [1, 3]],
    [3, [2]],
  ]);
  t.throws(() => maskInput({ ...setup.round, graph: lopsided }, p, x), {
    message: /graph is not symmetric at 1–3/,
  });
  const noKey = new Map(setup.round.publicKeys);
  noKey.delete(3);
  t.throws(() => maskInput({ ...setup.round, publicKeys: noKey }, p, x), {
    message: /publicKeys\[3\] must be 32 bytes/,
  });
  t.throws(() => maskInput(setup.round, p, new Uint32Array(5)), {
    message: /input must be a Uint32Array of 4 words/,
  });
  t.throws(() => secAggPlusGraph([1, 1, 2], 2, sha('g')), { message: /ids repeats 1/ });
  t.throws(() => secAggPlusGraph([1, 2, 3, 4, 5], 3, sha('g')), {
    message: /degree must be an even integer/,
  });
  t.throws(() => secAggPlusGraph([1, -2], 2, sha('g')), { message: /not an integer from 0/ });
  t.throws(() => createParticipant(2 ** 32), { message: /id must be an integer/ });
  t.throws(() => new ShareHolder(1, new Map(), 1), { message: /threshold must be an integer of at least 2/ });
  t.throws(() => (setup.holders.get(1) as ShareHolder).reveal([1, 2, 0.5], []), {
    message: /survivors\[2\] must be an integer/,
  });
});
