// The consistency check before unmasking (secagg/round/consistency.ts), through the real engines:
// a coordinator that shows two different secagg-unmask records to two halves of the survivors gets
// no share from anyone and the round aborts; a consistency record short of the quorum, or with a
// signature, hash or signer altered, is refused by the holders and named by the audit; survivors
// that drop during the consistency phase are recovered while the quorum remains.

import test from 'ava';
import { SecAggError, consistencyQuorum, expectedGraph, planOf, verifyRoundLog } from '@fedit/shared';
import {
  COORDINATOR,
  SecureFederation,
  type DropPhase,
  member,
  type RoundPlan,
} from './helpers/secure-round.ts';

const audit = (fed: SecureFederation) =>
  verifyRoundLog(fed.records, {
    coordinatorPublicKey: COORDINATOR.publicKey,
    blobs: (hash) => fed.blobs.get(hash),
    requireConfig: true,
  }).problems.map((p): string => p.code);

const hexOf = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

test('two secagg-unmask records shown to two halves of the survivors: nobody reveals, the round aborts', (t) => {
  const fed = new SecureFederation({ n: 4, graph: 'complete' });
  const refusals: string[] = [];
  const result = fed.runRound(1, {
    // The helper's honest path signs nothing: the halves below sign what they are shown.
    drop: new Map(fed.ids.map((id) => [id, 'consistency' as DropPhase])),
    unmasked: (clients, honest, collector) => {
      const survivors = honest.body.survivors;
      t.is(survivors.length, 4);
      // B moves survivors[0] to dropped: with A's self shares of it and B's key shares of it, its
      // input would be unmasked alone.
      const lie = fed.append('secagg-unmask', 1, {
        survivors: survivors.slice(1),
        dropped: [survivors[0]],
      });
      fed.records.pop(); // shown, never logged
      const halves = [
        { record: honest, members: survivors.slice(0, 2) },
        { record: lie, members: survivors.slice(2) },
      ];
      const signed = halves.map(({ record, members }) =>
        members.map((p) => ({ participant: p, payload: clients.get(p)!.onUnmask(record) })),
      );
      // The collector holds the logged record: the other half's signatures are not of it.
      for (const { participant, payload } of signed[0]) collector.addConsistency(participant, payload);
      for (const { participant, payload } of signed[1])
        t.is(
          t.throws(() => collector.addConsistency(participant, payload), { instanceOf: SecAggError })!.code,
          'SECAGG_SIGNATURE',
        );
      t.is(t.throws(() => collector.consistencyBody(), { instanceOf: SecAggError })!.code, 'SECAGG_ABORT');
      // The coordinator's best forgeries for each half: its own half's signatures (valid, too few),
      // or every signature it holds (the other half's are not of this record).
      const entries = (l: (typeof signed)[number]) =>
        l
          .map(({ participant, payload }) => ({ participant, signature: hexOf(payload.signature) }))
          .sort((a, b) => (a.participant < b.participant ? -1 : 1));
      halves.forEach(({ record, members }, h) => {
        for (const [signatures, why] of [
          [entries(signed[h]), /2 survivors signed the secagg-unmask record, below the threshold 3/],
          [
            entries(signed.flat()),
            /did not sign this secagg-unmask record|is not a survivor of the secagg-unmask/,
          ],
        ] as const) {
          const forged = fed.append('secagg-consistency', 1, { unmaskHash: record.hash, signatures });
          fed.records.pop();
          for (const p of members) {
            const err = t.throws(() => clients.get(p)!.onConsistency(forged), { instanceOf: SecAggError });
            refusals.push(err!.code);
            t.regex(err!.message, why);
          }
        }
      });
    },
  });
  t.is(result.outcome, 'aborted');
  t.regex(result.reason ?? '', /2 survivors signed the secagg-unmask record, below the threshold 3/);
  t.is(result.reveals.size, 0, 'no holder revealed a share');
  t.deepEqual(refusals, Array(8).fill('SECAGG_REFUSED'));
  t.deepEqual(audit(fed), []);
});

/** Runs a round of five whose secagg-consistency body `edit` alters before it is signed. */
function tampered(edit: NonNullable<RoundPlan['tamper']>, drop: DropPhase[] = []) {
  const fed = new SecureFederation({ n: 5, graph: 'complete' });
  const result = fed.runRound(1, {
    drop: new Map(drop.map((phase, k) => [fed.ids[k], phase])),
    tamper: (kind, body) => (kind === 'secagg-consistency' ? edit(kind, body) : body),
  });
  return { fed, result };
}

type Body = { unmaskHash: string; signatures: { participant: string; signature: string }[] };

test('a short, forged or misdirected consistency record is refused by the holders and named by the audit', (t) => {
  const cases: [string, (b: Body) => Body, string, RegExp][] = [
    ['short', (b) => ({ ...b, signatures: b.signatures.slice(0, 2) }), 'SECAGG_THRESHOLD', /below/],
    [
      'forged',
      (b) => ({
        ...b,
        signatures: b.signatures.map((s, k) =>
          k === 0 ? { ...s, signature: (s.signature[0] === '0' ? '1' : '0') + s.signature.slice(1) } : s,
        ),
      }),
      'SECAGG_SIGNATURE',
      /did not sign this secagg-unmask record/,
    ],
    [
      'other hash',
      (b) => ({ ...b, unmaskHash: `sha256:${'ab'.repeat(32)}` }),
      'SECAGG_MEMBERSHIP',
      /not the secagg-unmask record/,
    ],
  ];
  for (const [what, edit, code, refusal] of cases) {
    const { fed, result } = tampered((_k, body) => edit(body as Body) as never);
    t.is(result.outcome, 'aborted', what);
    t.is(result.code, 'SECAGG_REFUSED', what);
    t.regex(result.reason ?? '', refusal, what);
    t.is(result.reveals.size, 0, `${what}: nothing revealed`);
    t.true(audit(fed).includes(code), `${what}: ${audit(fed).join(', ')}`);
  }
  // A participant that dropped (p0, at masking), listed as a signer with another's signature.
  const dropped = member('p0').id;
  const { fed } = tampered(
    (_k, body) => {
      const b = body as Body;
      const signatures = [...b.signatures, { participant: dropped, signature: b.signatures[0].signature }];
      return {
        ...b,
        signatures: signatures.sort((x, y) => (x.participant < y.participant ? -1 : 1)),
      } as never;
    },
    ['masked'],
  );
  t.true(audit(fed).includes('SECAGG_MEMBERSHIP'), audit(fed).join(', '));
});

for (const [drop, outcome] of [
  [['consistency'], 'closed'],
  [['consistency', 'reveal'], 'closed'],
  [['consistency', 'consistency', 'consistency'], 'aborted'],
] as const) {
  test(`survivors dropping during the consistency phase (${drop.join(', ')}) of five: ${outcome}`, (t) => {
    const fed = new SecureFederation({ n: 5, graph: 'complete' });
    const result = fed.runRound(1, { drop: new Map(drop.map((phase, k) => [fed.ids[k], phase])) });
    t.is(result.outcome, outcome, result.reason);
    const consistency = fed.records.find((r) => r.kind === 'secagg-consistency');
    if (outcome === 'closed') {
      const signers = drop.filter((d) => d === 'consistency').length;
      t.is((consistency!.body as Body).signatures.length, 5 - signers);
      t.is(result.section!.maskedInputs.length, 5, 'every survivor summed');
    } else {
      t.is(consistency, undefined);
      t.is(result.code, 'SECAGG_ABORT');
      t.is(result.reveals.size, 0, 'nothing revealed');
    }
    t.deepEqual(audit(fed), []);
  });
}

test('the quorum is t with the complete graph and a majority of each holder set with SecAgg+', (t) => {
  const fed = new SecureFederation({ n: 9, graph: 'secagg+', degree: 4 });
  const settings = fed.config.secureAggregation!;
  for (const [graph, n] of [
    ['complete', 5],
    ['secagg+', 9],
  ] as const) {
    const s = { ...settings, graph };
    const { graph: ref, threshold } = expectedGraph(s, n, `sha256:${'12'.repeat(32)}`);
    const advertised = Array.from({ length: n }, (_, q) => ({
      participant: String.fromCharCode(97 + q),
      encryptionKey: '00'.repeat(32),
      maskKey: '00'.repeat(32),
      signature: '00'.repeat(64),
    }));
    const plan = planOf({ graph: ref, threshold, advertised }, s, `sha256:${'12'.repeat(32)}`);
    for (let id = 1; id <= n; id++) {
      const holders = plan.graph.get(id)!.length + 1;
      const quorum = consistencyQuorum(plan, id);
      t.true(2 * quorum > holders, `${graph}: ${quorum} of ${holders}`);
      t.true(quorum >= threshold);
      if (graph === 'complete') t.is(quorum, threshold);
    }
  }
});
