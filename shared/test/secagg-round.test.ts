// Secure rounds through the real engines (SecureRoundClient for each participant, the
// SecureRoundCollector for the coordinator), with every record signed into a log: full rounds on
// both graphs at n = 3, 5, 12; the unmasked result equals the plaintext weighted mean within the
// fixed-point bound and the audit's recomputation bit for bit.

import test from 'ava';
import {
  decodeSum,
  hashTensors,
  ringToSigned,
  secureFixedPoint,
  tensorsFromValues,
  tensorValues,
  verifyRoundLog,
} from '@fedit/shared';
import { COORDINATOR, LENGTH, SCHEMA, SecureFederation, type SecureOptions } from './helpers/secure-round.ts';

const audit = (fed: SecureFederation) =>
  verifyRoundLog(fed.records, {
    coordinatorPublicKey: COORDINATOR.publicKey,
    blobs: (hash) => fed.blobs.get(hash),
    requireConfig: true,
  });

for (const [graph, n] of [
  ['complete', 3],
  ['complete', 5],
  ['secagg+', 5],
  ['secagg+', 12],
  ['complete', 12],
] as const) {
  test(`a full ${graph} round of ${n}: the mean within n·2^-k of the plaintext one, audited bit for bit`, (t) => {
    const options: SecureOptions = { n, graph };
    const fed = new SecureFederation(options);
    const result = fed.runRound(1);
    t.is(result.outcome, 'closed', result.reason);
    const { sum, adapter } = result;
    // The sum is exactly the plain sum of the encodings (masks cancel), so only rounding remains.
    const fixedPoint = secureFixedPoint(fed.config.secureAggregation!, fed.config.aggregation.weightCap!);
    const { values, totalWeight } = decodeSum(sum!, n, fixedPoint);
    let total = 0;
    const exact = new Float64Array(LENGTH - 1);
    for (const { delta, weight } of result.deltas.values()) {
      total += weight;
      let i = 0;
      for (const name of [...SCHEMA.keys()].sort())
        for (const v of delta.get(name)!) exact[i++] += weight * v;
    }
    t.is(totalWeight, total);
    const bound = n * 2 ** -fixedPoint.scaleBits;
    for (let i = 0; i < exact.length; i++) t.true(Math.abs(values[i] - exact[i]) <= bound, `coordinate ${i}`);
    // The new adapter is global + the mean: within n·2^-k / T of the plaintext weighted mean, plus
    // the float32 rounding of the mean and of the sum with the global value.
    const global = tensorValues(
      fed.blobs.get(fed.records.find((r) => r.kind === 'round-open')!.body.globalAdapter)!,
    );
    let i = 0;
    for (const name of [...SCHEMA.keys()].sort())
      adapter!.get(name)!.forEach((v, e) => {
        const g = global.get(name)![e];
        const expected = g + exact[i++] / total;
        t.true(Math.abs(v - expected) <= bound / total + 2 ** -22 * (Math.abs(expected) + Math.abs(g)), name);
      });
    // The audit recomputes exactly the recorded adapter.
    const report = audit(fed);
    t.deepEqual(report.problems, []);
    t.is(report.rounds[0].aggregation, 'verified');
    t.is(fed.globalAdapter, hashTensors(tensorsFromValues(SCHEMA, adapter!)));
    t.is(ringToSigned(sum![LENGTH - 1]), total);
  });
}
