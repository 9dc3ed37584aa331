// Dropouts at every phase of a secure round, through the real engines: recovered while at least t
// remain (and then audited bit for bit), aborted with nothing revealed below t; a survivor whose
// every neighbour dropped is never unmasked (SECAGG_EXPOSED); a coordinator lying about who
// dropped is refused by the holders (SECAGG_REFUSED).

import test, { type ExecutionContext } from 'ava';
import { SecAggError, decodeSum, expectedGraph, secureFixedPoint, verifyRoundLog } from '@fedit/shared';
import { COORDINATOR, SecureFederation, type DropPhase, type RoundResult } from './helpers/secure-round.ts';

const audit = (fed: SecureFederation) =>
  verifyRoundLog(fed.records, {
    coordinatorPublicKey: COORDINATOR.publicKey,
    blobs: (hash) => fed.blobs.get(hash),
    requireConfig: true,
  });

/** The survivors' plaintext weighted sum must be what the round decoded, within n·2^-k. */
function assertSurvivorsSum(t: ExecutionContext, fed: SecureFederation, result: RoundResult): void {
  const survivors = result.section!.maskedInputs.map((m) => m.participant);
  const fixedPoint = secureFixedPoint(fed.config.secureAggregation!, fed.config.aggregation.weightCap!);
  const { values, totalWeight } = decodeSum(result.sum!, survivors.length, fixedPoint);
  t.is(
    totalWeight,
    survivors.reduce((w, p) => w + result.deltas.get(p)!.weight, 0),
  );
  const first = [...result.deltas.get(survivors[0])!.delta.keys()].sort()[0];
  const expected = survivors.reduce(
    (s, p) => s + result.deltas.get(p)!.weight * result.deltas.get(p)!.delta.get(first)![0],
    0,
  );
  t.true(Math.abs(values[0] - expected) <= survivors.length * 2 ** -fixedPoint.scaleBits);
}

const drops = (fed: SecureFederation, phases: DropPhase[]) =>
  new Map(phases.map((phase, k) => [fed.ids[k], phase]));

for (const phase of ['advertise', 'shares', 'masked', 'reveal'] as const) {
  test(`one of five dropping at ${phase} is recovered and the round audits`, (t) => {
    const fed = new SecureFederation({ n: 5, graph: 'complete' });
    const result = fed.runRound(1, { drop: drops(fed, [phase]) });
    t.is(result.outcome, 'closed', result.reason);
    t.is(result.section!.maskedInputs.length, phase === 'reveal' ? 5 : 4);
    assertSurvivorsSum(t, fed, result);
    const report = audit(fed);
    t.deepEqual(report.problems, []);
    t.is(report.rounds[0].aggregation, 'verified');
  });
}

test('SecAgg+ at twelve recovers two dropped after sharing and one silent at reveal', (t) => {
  const fed = new SecureFederation({ n: 12, graph: 'secagg+' });
  const result = fed.runRound(1, { drop: drops(fed, ['masked', 'masked', 'reveal', 'advertise']) });
  t.is(result.outcome, 'closed', result.reason);
  assertSurvivorsSum(t, fed, result);
  t.deepEqual(audit(fed).problems, []);
});

for (const [phase, where] of [
  ['shares', /participants shared their keys, below the threshold 3/],
  ['masked', /masked inputs arrived, below the threshold 3/],
  ['reveal', /too few reveals/],
] as const) {
  test(`three of five dropping at ${phase} abort the round${phase === 'reveal' ? '' : ' before anything is revealed'}`, (t) => {
    const fed = new SecureFederation({ n: 5, graph: 'complete' });
    const result = fed.runRound(1, { drop: drops(fed, [phase, phase, phase]) });
    t.is(result.outcome, 'aborted');
    t.regex(result.reason ?? '', where);
    if (phase !== 'reveal') t.is(result.reveals.size, 0);
    t.is(fed.records.at(-1)!.kind, 'round-aborted');
    t.deepEqual(audit(fed).problems, []);
  });
}

test('a survivor whose every neighbour dropped is never unmasked: the round aborts (SECAGG_EXPOSED)', (t) => {
  const fed = new SecureFederation({ n: 8, graph: 'secagg+', degree: 2 });
  let lonely = '';
  const result = fed.runRound(1, {
    drop: (open) => {
      const { mask } = expectedGraph(fed.config.secureAggregation!, 8, open.hash);
      const sorted = [...fed.ids].sort();
      lonely = sorted[0];
      return new Map(mask.get(1)!.map((j) => [sorted[j - 1], 'masked' as const]));
    },
  });
  t.is(result.outcome, 'aborted');
  t.regex(result.reason ?? '', new RegExp(`expose the input of ${lonely}`));
  t.is(result.reveals.size, 0);
  t.deepEqual(audit(fed).problems, []);
});

test('every holder refuses an unmask record that would expose a survivor (its neighbours listed as dropped)', (t) => {
  const fed = new SecureFederation({ n: 8, graph: 'secagg+', degree: 2 });
  const codes = new Map<string, string>();
  let neighbours: string[] = [];
  const result = fed.runRound(1, {
    drop: (open) => {
      const { mask } = expectedGraph(fed.config.secureAggregation!, 8, open.hash);
      const sorted = [...fed.ids].sort();
      neighbours = mask.get(1)!.map((j) => sorted[j - 1]);
      return new Map();
    },
    unmasked: (clients, unmask) => {
      const b = unmask.body;
      const lie = fed.append('secagg-unmask', 1, {
        survivors: b.survivors.filter((p) => !neighbours.includes(p)),
        dropped: [...neighbours].sort(),
      });
      for (const [id, client] of clients)
        codes.set(id, t.throws(() => client.onUnmask(lie), { instanceOf: SecAggError })!.code);
      fed.records.pop();
    },
  });
  t.is(result.outcome, 'closed', result.reason);
  for (const [id, code] of codes)
    t.is(code, neighbours.includes(id) ? 'SECAGG_REFUSED' : 'SECAGG_EXPOSED', id);
  t.is(codes.size, 8);
});

test('holders refuse both kinds of share of one participant, in either order (a coordinator lying about who dropped)', (t) => {
  const fed = new SecureFederation({ n: 5, graph: 'complete' });
  const refusals: string[] = [];
  const result = fed.runRound(1, {
    drop: drops(fed, ['masked']),
    after: (clients, unmask) => {
      const dropped = unmask.body.dropped[0];
      const survivor = unmask.body.survivors[0];
      // First lie: the dropped participant survived (its self share, after its key share went out).
      const lie1 = fed.append('secagg-unmask', 1, {
        survivors: [...unmask.body.survivors, dropped].sort(),
        dropped: [],
      });
      // Second lie: a survivor dropped (its key share, after its self share went out).
      const lie2 = fed.append('secagg-unmask', 1, {
        survivors: unmask.body.survivors.filter((p) => p !== survivor),
        dropped: [...unmask.body.dropped, survivor].sort(),
      });
      for (const [id, client] of clients) {
        if (id === dropped) continue;
        for (const lie of [lie1, lie2]) {
          if (id === survivor && lie === lie2) continue;
          const err = t.throws(() => client.onUnmask(lie), { instanceOf: SecAggError });
          refusals.push(err!.code);
          t.regex(err!.message, /already signed another secagg-unmask record/);
        }
      }
      fed.records.splice(-2); // the lies were never part of the honest log
    },
  });
  t.is(result.outcome, 'closed', result.reason);
  t.true(refusals.length >= 6);
  t.true(
    refusals.every((code) => code === 'SECAGG_REFUSED'),
    refusals.join(', '),
  );
});
