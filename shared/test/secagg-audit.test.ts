// The audit of secure rounds (`fedit audit`'s verifier with the blob store): an honest log of
// secure rounds verifies, with a server optimizer too; a tampered masked input, reveal,
// commitment, survivors list, total weight or aggregate is each caught by a named problem; a
// holder's share shifted by a chosen offset (which Shamir alone cannot see) is caught by the
// self-seed commitment; and no stored blob correlates with any participant's update.

import test from 'ava';
import {
  SHAMIR_PRIME,
  decodeShare,
  encodeShare,
  maskedInputTensors,
  maskedWordsOf,
  revealFields,
  ringToSigned,
  signSecagg,
  verifyRoundLog,
  type RoundClosedBody,
  type RoundRecordBodies,
  type RoundRecordKind,
  type SecaggSharesBody,
  type SecaggUnmaskBody,
  type Tensor,
} from '@fedit/shared';
import { COORDINATOR, SecureFederation } from './helpers/secure-round.ts';

const audit = (fed: SecureFederation, blobs = fed.blobs) =>
  verifyRoundLog(fed.records, {
    coordinatorPublicKey: COORDINATOR.publicKey,
    blobs: (h) => blobs.get(h),
    requireConfig: true,
  });
const codes = (fed: SecureFederation, blobs = fed.blobs) => [
  ...new Set(audit(fed, blobs).problems.map((p) => p.code)),
];

type Tamper = <K extends RoundRecordKind>(kind: K, body: RoundRecordBodies[K]) => RoundRecordBodies[K];
/** A federation of five whose round 1 is run with `tamper` applied to the bodies it names. */
function tampered(edit: {
  [K in RoundRecordKind]?: (body: RoundRecordBodies[K], fed: SecureFederation) => RoundRecordBodies[K];
}) {
  const fed = new SecureFederation({ n: 5, graph: 'complete' });
  const tamper: Tamper = (kind, body) => {
    const f = edit[kind] as ((b: typeof body, fed: SecureFederation) => typeof body) | undefined;
    return f ? f(structuredClone(body), fed) : body;
  };
  const result = fed.runRound(1, { drop: new Map([[fed.ids[4], 'masked' as const]]), tamper });
  return { fed, result };
}

test('two honest secure rounds with a server optimizer verify, state and all', (t) => {
  const fed = new SecureFederation({ n: 5, graph: 'secagg+', serverOptimizer: true });
  t.is(fed.runRound(1).outcome, 'closed');
  t.is(fed.runRound(2, { drop: new Map([[fed.ids[1], 'masked' as const]]) }).outcome, 'closed');
  const report = audit(fed);
  t.deepEqual(report.problems, []);
  t.deepEqual(
    report.rounds.map((r) => r.aggregation),
    ['verified', 'verified'],
  );
  t.truthy(fed.serverState);
});

test('a masked input changed in the blob store, or swapped for another the coordinator made, is caught', (t) => {
  const { fed, result } = tampered({});
  const m = result.section!.maskedInputs[0];
  const blobs = new Map(fed.blobs);
  const words = maskedWordsOf(blobs.get(m.hash)!, fed.length);
  words[0] ^= 1;
  blobs.set(m.hash, maskedInputTensors(words));
  t.deepEqual(codes(fed, blobs), ['BLOB_CORRUPT']);
  // The coordinator stores its own masked input under its own hash and records that: the
  // participant never signed it.
  const swapped = tampered({
    'round-closed': (body, f) => {
      const w = maskedWordsOf(f.blobs.get(body.secure!.maskedInputs[0].hash)!, f.length);
      w[0] ^= 1;
      body.secure!.maskedInputs[0].hash = f.store(maskedInputTensors(w));
      return body;
    },
  });
  t.true(codes(swapped.fed).includes('ENVELOPE'));
});

test('a reveal, a commitment or a survivors list altered by the coordinator is caught by name', (t) => {
  const reveal = tampered({
    'round-closed': (body) => {
      const r = body.secure!.reveals[0];
      const owner = Object.keys(r.self)[0];
      r.self[owner] = r.self[Object.keys(r.self)[1]];
      return body;
    },
  });
  t.true(codes(reveal.fed).includes('SECAGG_SIGNATURE'));
  const commitment = tampered({
    'secagg-shares': (body: SecaggSharesBody) => {
      body.shared[0].selfSeedCommitment = '0'.repeat(64);
      return body;
    },
  });
  // The participants refuse the altered record, so the round aborts; the log still names it.
  t.true(codes(commitment.fed).includes('SECAGG_SIGNATURE'));
  const survivors = tampered({
    'round-closed': (body: RoundClosedBody) => {
      body.secure!.maskedInputs = body.secure!.maskedInputs.slice(1);
      return body;
    },
  });
  t.true(codes(survivors.fed).includes('SECAGG_MEMBERSHIP'));
  const split = tampered({
    'secagg-unmask': (body: SecaggUnmaskBody) => ({ survivors: body.survivors, dropped: [] }),
  });
  t.true(codes(split.fed).includes('SECAGG_MEMBERSHIP'));
});

test('a recorded total weight or new adapter other than the sum gives is caught', (t) => {
  const weight = tampered({
    'round-closed': (body) => {
      body.secure!.totalWeight += 1;
      return body;
    },
  });
  t.deepEqual(codes(weight.fed), ['SECAGG_SUM']);
  const adapter = tampered({
    'round-closed': (body) => {
      body.globalAdapterOut = body.globalAdapterIn; // as if the round changed nothing
      return body;
    },
  });
  t.deepEqual(codes(adapter.fed), ['AGGREGATION_MISMATCH']);
});

test('a plaintext round in a secure federation is named (SECAGG_PLAINTEXT)', (t) => {
  const { fed } = tampered({
    'round-closed': (body) => {
      const { secure: _gone, ...plain } = body;
      return plain as typeof body;
    },
  });
  const found = codes(fed);
  t.true(found.includes('SECAGG_PLAINTEXT'));
  t.true(found.includes('NO_UPDATES'));
});

/** λ_q at 0 for evaluation points `xs`: the weight share q has in the reconstructed secret. */
function lagrangeAtZero(xs: readonly number[], q: number): bigint {
  const mod = (a: bigint) => ((a % SHAMIR_PRIME) + SHAMIR_PRIME) % SHAMIR_PRIME;
  const pow = (b: bigint, e: bigint): bigint => {
    let r = 1n;
    for (let x = mod(b); e > 0n; e >>= 1n, x = (x * x) % SHAMIR_PRIME) if (e & 1n) r = (r * x) % SHAMIR_PRIME;
    return r;
  };
  let num = 1n;
  let den = 1n;
  for (const x of xs) {
    if (x === q) continue;
    num = mod(num * BigInt(x));
    den = mod(den * BigInt(x - q));
  }
  return mod(num * pow(den, SHAMIR_PRIME - 2n));
}

test("a holder's share shifted to move the reconstructed self seed by one is caught by the commitment", (t) => {
  const fed = new SecureFederation({ n: 4, graph: 'complete' });
  let victim = '';
  const holders: string[] = [];
  const result = fed.runRound(1, {
    reveal: (holder, payload) => {
      holders.push(holder);
      if (holders.length !== 1) return payload;
      // The first holder shifts its self share of the first owner by δ/λ, so that the
      // interpolation over all four holders gives b + 1: a valid 32-byte secret, unless the
      // commitment is checked.
      victim = payload.self[0].owner;
      const share = decodeShare(payload.self[0].share);
      const lambda = lagrangeAtZero([1, 2, 3, 4], share.x);
      const inverse = (() => {
        let r = 1n;
        let b = lambda;
        for (let e = SHAMIR_PRIME - 2n; e > 0n; e >>= 1n, b = (b * b) % SHAMIR_PRIME)
          if (e & 1n) r = (r * b) % SHAMIR_PRIME;
        return r;
      })();
      const shifted = encodeShare({ x: share.x, y: (share.y + inverse) % SHAMIR_PRIME });
      const self = payload.self.map((s, k) => (k === 0 ? { ...s, share: shifted } : s));
      const context = { federation: fed.config.id, round: 1, participant: holder };
      return {
        ...payload,
        self,
        signature: signSecagg(
          'reveal',
          context,
          revealFields(self, payload.key),
          fed.identityOf(holder).sign.secretKey,
        ),
      };
    },
  });
  t.is(result.code, 'SECAGG_SHARES');
  t.regex(result.reason ?? '', new RegExp(`reconstructed for ${victim} does not match its commitment`));
  t.is(holders.length, 4);
});

/** Pearson's r of two equally long vectors. */
function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i] / n;
    mb += b[i] / n;
  }
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

test('no stored masked input correlates with any participant update (|r| < 0.05 over 20,000 coordinates)', (t) => {
  const schema = new Map([
    ['a.lora_A.weight', [10, 1000]],
    ['a.lora_B.weight', [1000, 10]],
  ]);
  const fed = new SecureFederation({ n: 5, graph: 'complete', schema });
  const result = fed.runRound(1);
  t.is(result.outcome, 'closed');
  const flat = (d: Map<string, Float32Array>) =>
    Float64Array.from([...[...d.keys()].sort().flatMap((k) => [...d.get(k)!])]);
  const deltas = [...result.deltas.values()].map(({ delta }) => flat(delta));
  // Every masked input the store holds, read back as the audit reads it.
  const stored = result.section!.maskedInputs.map((m) =>
    maskedWordsOf(fed.blobs.get(m.hash)! as Map<string, Tensor>, fed.length),
  );
  t.is(stored.length, 5);
  let worst = 0;
  for (const words of stored) {
    const signed = Float64Array.from(words.subarray(0, fed.length - 1), ringToSigned);
    for (const d of deltas) worst = Math.max(worst, Math.abs(pearson(signed, d)));
  }
  t.true(worst < 0.05, `largest |r| ${worst}`);
  // The same statistic sees the update in a plain encoding: the test can fail.
  const plain = Float64Array.from(deltas[0], (v) => Math.round(v * 2 ** 16));
  t.true(pearson(plain, deltas[0]) > 0.99);
});
