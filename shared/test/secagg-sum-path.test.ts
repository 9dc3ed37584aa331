// The sum path (aggregation/secure.ts) and the 'secagg:phase' announcement: FFA-LoRA's zero A
// deltas leave A bit for bit; a server optimizer steps from global + mean exactly as it does from
// a plaintext target; a non-sum rule is refused; and a participant accepts a phase record only
// when it is one of the secure kinds, signed by its coordinator.

import test from 'ava';
import nacl from 'tweetnacl';
import {
  AnnouncementError,
  SECAGG_PHASE_KINDS,
  aggregateSecureRound,
  decodeWeightedMean,
  encodeUpdate,
  flattenDelta,
  plainSum,
  secureFixedPoint,
  secureTarget,
  serverStep,
  aggregationRule,
  verifyAnnouncedRecord,
  type FixedPointConfig,
} from '@fedit/shared';
import {
  A,
  B,
  COORDINATOR,
  SCHEMA,
  SecureFederation,
  deltaOf,
  secureConfig,
} from './helpers/secure-round.ts';

const config = secureConfig({ n: 3, graph: 'complete' });
const fixedPoint: FixedPointConfig = secureFixedPoint(
  config.secureAggregation!,
  config.aggregation.weightCap!,
);
const global = new Map(
  [...SCHEMA].map(([name, [r, c]]) => [name, Float32Array.from({ length: r * c }, (_, i) => i / 7)]),
);

/** The unmasked sum of three participants' encodings (masks cancel, so the plain sum is it). */
function sumOf(deltas: Map<string, Float32Array>[], weights: number[]): Uint32Array {
  const encoded = deltas.map((d, k) =>
    encodeUpdate(flattenDelta(d), weights[k], fixedPoint, new Uint8Array(32).fill(k + 1)),
  );
  return plainSum(encoded, encoded[0].length);
}

test('FFA-LoRA: zero A deltas leave every A element of the global adapter bit for bit', (t) => {
  const deltas = [0, 1, 2].map((k) => {
    const d = deltaOf(1, k);
    d.set(A, new Float32Array(d.get(A)!.length));
    return d;
  });
  const { adapter } = aggregateSecureRound({
    rule: 'fedit',
    config: {},
    schema: SCHEMA,
    global,
    sum: sumOf(deltas, [3, 5, 7]),
    survivors: 3,
    fixedPoint,
  });
  t.deepEqual(adapter.get(A), global.get(A));
  t.notDeepEqual(adapter.get(B), global.get(B));
});

test('a server optimizer steps from global + mean exactly as serverStep does from that target', (t) => {
  const deltas = [0, 1, 2].map((k) => deltaOf(2, k));
  const sum = sumOf(deltas, [1, 1, 1]);
  const ruleConfig = {
    serverOptimizer: { kind: 'adam', lr: '0.5', beta1: '0.9', beta2: '0.99', tau: '0.001' },
  };
  const secure = aggregateSecureRound({
    rule: 'fedavg-uniform',
    config: ruleConfig,
    schema: SCHEMA,
    global,
    sum,
    survivors: 3,
    fixedPoint,
  });
  const target = secureTarget(SCHEMA, global, decodeWeightedMean(sum, 3, fixedPoint));
  const settings = aggregationRule('fedavg-uniform').settings(ruleConfig).serverOptimizer!;
  const step = serverStep(settings, SCHEMA, global, target, undefined);
  t.deepEqual(secure.adapter, step.adapter);
  t.deepEqual(secure.serverState, step.state);
});

test('a rule that is not a sum is refused by the sum path', (t) => {
  const sum = sumOf([deltaOf(1, 0), deltaOf(1, 1)], [1, 1]);
  t.throws(
    () =>
      aggregateSecureRound({
        rule: 'median',
        config: {},
        schema: SCHEMA,
        global,
        sum,
        survivors: 2,
        fixedPoint,
      }),
    { message: /not a sum/ },
  );
});

test("'secagg:phase' carries only the secure kinds, signed by the federation's coordinator", (t) => {
  const fed = new SecureFederation({ n: 3, graph: 'complete' });
  fed.runRound(1);
  const trust = {
    federation: fed.config.id,
    coordinator: { sign: COORDINATOR.publicKey, box: new Uint8Array(32) },
  };
  const keys = fed.records.find((r) => r.kind === 'secagg-keys')!;
  t.is(verifyAnnouncedRecord(keys, SECAGG_PHASE_KINDS, trust, 'the phase').kind, 'secagg-keys');
  const open = fed.records.find((r) => r.kind === 'round-open')!;
  t.throws(() => verifyAnnouncedRecord(open, SECAGG_PHASE_KINDS, trust, 'the phase'), {
    instanceOf: AnnouncementError,
    message:
      /round-open record, where secagg-keys or secagg-shares or secagg-unmask or secagg-consistency belongs/,
  });
  const other = { ...trust, coordinator: { sign: nacl.sign.keyPair().publicKey, box: new Uint8Array(32) } };
  t.throws(() => verifyAnnouncedRecord(keys, SECAGG_PHASE_KINDS, other, 'the phase'), {
    instanceOf: AnnouncementError,
    message: /not signed by this federation's coordinator/,
  });
});
