// Product-space aggregation of LoRA updates: average what each participant's adapter does, the
// update s_k B_k A_k, not its factors (mean(B) mean(A) != mean(B A): the cross terms B_i A_j are
// noise), then re-factor the average to the global rank by truncated SVD. Stacking the factors, as
// FLoRA does (Wang et al., "FLoRA: Federated Fine-Tuning Large Language Models with Heterogeneous
// Low-Rank Adaptations", 2024), makes the sum exact before truncation and lets participants train
// different ranks r_k <= r. The dense out x in product P is never formed: the cost per module is
// O((out + in) R^2 + R^3) for R = r_1 + ... + r_K.
//
// Exact arithmetic, per module (linalg.ts fixes householderQr and jacobiSvd to the bit):
//   pair k in canonical order: A_k [r_k x in], B_k [out x r_k] (float32 widened exactly, or
//   binary64), scale s_k (PEFT's alpha / r_k), weight w_k;  o_k = r_1 + ... + r_{k-1}
//   c_k = w_k * s_k                                    binary64
//   Bs [out x R]:  Bs[i, o_k + j] = c_k * B_k[i, j]      so Bs As = sum_k w_k s_k B_k A_k = W P
//   AsT [in x R]:  AsT[i, o_k + j] = A_k[j, i]           (exact: As transposed)
//   (Qb, Rb) = householderQr(Bs, out, R);  (Qa, Ra) = householderQr(AsT, in, R)
//   pb = min(out, R), pa = min(in, R);  M [pb x pa]: M[i, j] = sum_{t=0..R-1} Rb[i, t] * Ra[j, t]
//   (U, sigma, V) = jacobiSvd(M, pb, pa);  p = min(pb, pa)
//   W = w_1 + ... + w_K (sequential);  den = W * scaleOut;  kept = min(rank, p)
//   Ub = applyQ(Qb, U[:, 0..kept-1]) (out x kept);  Va = applyQ(Qa, V[:, 0..kept-1])
//   for j < kept, by the split (how sigma_j is shared between the factors; both give the same product):
//     'balanced' (default):  d_j = sqrt(sigma_j / den)
//                            B_new[i, j] = float32( Ub[i, j] * d_j );  A_new[j, i] = float32( d_j * Va[i, j] )
//     'orthonormal-a':       e_j = sigma_j / den
//                            B_new[i, j] = float32( Ub[i, j] * e_j );  A_new[j, i] = float32( Va[i, j] )
//   for kept <= j < rank: column j of B_new and row j of A_new are +0.
// Since Bs As = Qb M Qa^T, scaleOut * B_new A_new = sum_{j<rank} sigma_j/W (Qb u_j)(Qa v_j)^T, the
// best rank-`rank` approximation of P (Eckart-Young); when R <= rank it is P itself, up to the
// float32 rounding of the result. In numpy (same maths, not the same bits): P = sum(w*s*B@A)/W;
// U, S, Vt = svd(P); d = sqrt(S[:r] / scaleOut); B_new = U[:, :r] * d; A_new = d[:, None] * Vt[:r].
//
// Which split trains better is the bench's question. 'balanced' gives both factors the norm
// sqrt(sigma_j / den), small for a small update, and LoRA's gradients (dB ~ A, dA ~ B) shrink with
// it; 'orthonormal-a' keeps A's rows orthonormal, near the scale of PEFT's initial A (as FedSVD
// re-initialises A from the right singular vectors), and puts all of sigma_j in B. Components with
// sigma_j = 0 have B zero (and A zero too under 'balanced'), so a participant cannot grow them
// back under 'balanced'; they occur only when R < rank or the weighted sum is rank-deficient.

import { AggregationError } from './aggregation-error.ts';
import { applyQ, householderQr, jacobiSvd } from './linalg.ts';
import { loraModules, type LoraModule } from './lora-modules.ts';
import { validateUpdate, type AdapterSchema, type TensorValues } from './schema.ts';

/** How each kept singular value is shared between B_new and A_new (see the header). */
export type FactorSplit = 'balanced' | 'orthonormal-a';
export const FACTOR_SPLITS: readonly FactorSplit[] = ['balanced', 'orthonormal-a'];

export interface FactorPair {
  /** lora_A, rank x in, row-major. */
  a: Float32Array | Float64Array;
  /** lora_B, out x rank, row-major. */
  b: Float32Array | Float64Array;
  rank: number;
  /** The participant's LoRA scaling, alpha / rank in PEFT. */
  scale: number;
  /** The weight the rule sums with (an example count, or 1). */
  weight: number;
}

/**
 * B_new [out x rank] and A_new [rank x in] with scaleOut * B_new A_new the best rank-`rank`
 * approximation of sum_k w_k s_k B_k A_k / sum_k w_k (arithmetic in the file header).
 */
export function productSvd(
  pairs: readonly FactorPair[],
  inFeatures: number,
  outFeatures: number,
  rank: number,
  scaleOut: number,
  split: FactorSplit = 'balanced',
): { a: Float32Array; b: Float32Array } {
  checkPositiveInteger('inFeatures', inFeatures);
  checkPositiveInteger('outFeatures', outFeatures);
  checkPositiveInteger('rank', rank);
  checkPositiveFinite('scaleOut', scaleOut);
  checkSplit(split);
  if (pairs.length === 0) throw new AggregationError('AGGREGATION_EMPTY', 'no factor pair to aggregate');
  pairs.forEach((pair, k) => checkPair(pair, k, inFeatures, outFeatures));
  const stackedRank = pairs.reduce((sum, pair) => sum + pair.rank, 0);
  const { bs, asT } = stackFactors(pairs, inFeatures, outFeatures, stackedRank);
  const qb = householderQr(bs, outFeatures, stackedRank);
  const qa = householderQr(asT, inFeatures, stackedRank);
  const core = coreProduct(qb.r, qa.r, qb.p, qa.p, stackedRank);
  const svd = jacobiSvd(core, qb.p, qa.p);
  let totalWeight = 0;
  for (const pair of pairs) totalWeight += pair.weight;
  const den = totalWeight * scaleOut;
  const kept = Math.min(rank, svd.p);
  const ub = applyQ(qb, leadingColumns(svd.u, qb.p, svd.p, kept), kept);
  const va = applyQ(qa, leadingColumns(svd.v, qa.p, svd.p, kept), kept);
  const b = new Float32Array(outFeatures * rank);
  const a = new Float32Array(rank * inFeatures);
  for (let j = 0; j < kept; j++) {
    if (split === 'balanced') {
      const d = Math.sqrt(svd.s[j] / den);
      for (let i = 0; i < outFeatures; i++) b[i * rank + j] = ub[i * kept + j] * d;
      for (let i = 0; i < inFeatures; i++) a[j * inFeatures + i] = d * va[i * kept + j];
    } else {
      const e = svd.s[j] / den;
      for (let i = 0; i < outFeatures; i++) b[i * rank + j] = ub[i * kept + j] * e;
      for (let i = 0; i < inFeatures; i++) a[j * inFeatures + i] = va[i * kept + j];
    }
  }
  return { a, b };
}

export interface ProductSvdUpdate {
  /** The participant's trained lora_A / lora_B tensors; each module's rank r_k <= the global rank. */
  values: ReadonlyMap<string, Float32Array | Float64Array>;
  /** The weight the rule sums with (an example count, or 1). */
  weight: number;
  /** Names the update in errors (e.g. the participant id); "update <index>" otherwise. */
  label?: string;
}

/**
 * The whole adapter by productSvd, module by module. `schema` is the global adapter's (rank
 * `o.rank` in every module); `updates` in canonical order. An update's rank in a module is read
 * from its lora_A length (r_k = length / in) and may be any 1..o.rank; its scale is o.alpha / r_k,
 * the global one o.alpha / o.rank. Returns the global tensors in schema order. Everything is
 * checked before anything is computed; errors name the update and the tensor.
 */
export function productSvdAdapter(
  updates: readonly ProductSvdUpdate[],
  schema: AdapterSchema,
  o: { rank: number; alpha: number; split?: FactorSplit },
): Map<string, Float32Array> {
  checkOptions(o);
  const modules = loraModules(schema);
  for (const m of modules) {
    if (m.rank !== o.rank) {
      throw new AggregationError(
        'AGGREGATION_SHAPE',
        `tensor ${m.aName} of the global adapter has rank ${m.rank}; the federation's rank is ${o.rank}`,
      );
    }
  }
  if (updates.length === 0)
    throw new AggregationError('AGGREGATION_EMPTY', 'no update was given; there is nothing to aggregate');
  const ranks = updates.map((update, k) => updateRanks(update, k, schema, modules, o.rank));
  const result = new Map<string, Float32Array>();
  modules.forEach((m, index) => {
    const pairs = updates.map((update, k): FactorPair => {
      const rank = ranks[k][index];
      return {
        a: update.values.get(m.aName)!,
        b: update.values.get(m.bName)!,
        rank,
        scale: o.alpha / rank,
        weight: update.weight,
      };
    });
    const { a, b } = productSvd(pairs, m.inFeatures, m.outFeatures, o.rank, o.alpha / o.rank, o.split);
    result.set(m.aName, a);
    result.set(m.bName, b);
  });
  return new Map([...schema.keys()].map((name) => [name, result.get(name)!]));
}

/**
 * The top-`rank` part of a global adapter that productSvd made (components in descending singular
 * value), for a participant who trains rank `rank`: A' = A[:rank, :] (exact copy, so A keeps its
 * split's scale) and B' = float32(f * B[:, :rank]) with f = rank / R in binary64, R the schema's
 * rank, so that (alpha/rank) B' A' = (alpha/R) B[:, :rank] A[:rank, :]: the same delta, truncated.
 * The result has the shapes of schemaAtRank(schema, rank), in schema order.
 */
export function truncateAdapterRank(
  values: TensorValues,
  schema: AdapterSchema,
  rank: number,
): Map<string, Float32Array> {
  validateUpdate(schema, values, { label: 'global adapter' });
  const result = new Map<string, Float32Array>();
  for (const m of loraModules(schema)) {
    if (!Number.isSafeInteger(rank) || rank <= 0 || rank > m.rank) {
      throw new AggregationError(
        'AGGREGATION_CONFIG',
        `rank ${rank} must be an integer in 1..${m.rank} (the rank of ${m.aName})`,
      );
    }
    const f = rank / m.rank;
    const a = values.get(m.aName)!;
    const b = values.get(m.bName)!;
    const aOut = a.slice(0, rank * m.inFeatures);
    const bOut = new Float32Array(m.outFeatures * rank);
    for (let i = 0; i < m.outFeatures; i++)
      for (let j = 0; j < rank; j++) bOut[i * rank + j] = f * b[i * m.rank + j];
    result.set(m.aName, aOut);
    result.set(m.bName, bOut);
  }
  return new Map([...schema.keys()].map((name) => [name, result.get(name)!]));
}

/** Checks one update against the modules and returns its rank in each (module order). */
function updateRanks(
  update: ProductSvdUpdate,
  k: number,
  schema: AdapterSchema,
  modules: readonly LoraModule[],
  globalRank: number,
): number[] {
  const label = update.label ?? `update ${k}`;
  checkPositiveFinite(`${label}: weight`, update.weight);
  for (const name of update.values.keys()) {
    if (!schema.has(name)) {
      throw new AggregationError(
        'AGGREGATION_TENSOR_NAME',
        `${label}: has tensor ${name}, which the global adapter does not have`,
      );
    }
  }
  return modules.map((m) => {
    const a = update.values.get(m.aName);
    const b = update.values.get(m.bName);
    if (a === undefined || b === undefined) {
      throw new AggregationError(
        'AGGREGATION_TENSOR_NAME',
        `${label}: lacks tensor ${a === undefined ? m.aName : m.bName} of the global adapter`,
      );
    }
    const rank = a.length / m.inFeatures;
    if (!Number.isInteger(rank) || rank < 1 || rank > globalRank) {
      throw new AggregationError(
        'AGGREGATION_SHAPE',
        `${label}: tensor ${m.aName} has ${a.length} values, not [r, ${m.inFeatures}] for a rank r in 1..${globalRank}`,
      );
    }
    checkFactor(`${label}: tensor ${m.aName}`, a, rank * m.inFeatures, `[${rank}, ${m.inFeatures}]`);
    checkFactor(
      `${label}: tensor ${m.bName}`,
      b,
      m.outFeatures * rank,
      `[${m.outFeatures}, ${rank}] (rank ${rank} from its lora_A)`,
    );
    return rank;
  });
}

function checkSplit(split: unknown): void {
  if (!(FACTOR_SPLITS as readonly unknown[]).includes(split)) {
    throw new AggregationError(
      'AGGREGATION_CONFIG',
      `split must be one of ${FACTOR_SPLITS.join(', ')}, got ${JSON.stringify(split)}`,
    );
  }
}

function checkOptions(o: { rank: number; alpha: number; split?: FactorSplit }): void {
  if (o.split !== undefined) checkSplit(o.split);
  if (!Number.isSafeInteger(o.rank) || o.rank <= 0) {
    throw new AggregationError('AGGREGATION_CONFIG', `rank must be a positive integer, got ${o.rank}`);
  }
  if (!Number.isFinite(o.alpha) || o.alpha <= 0) {
    throw new AggregationError(
      'AGGREGATION_CONFIG',
      `alpha must be a positive finite number, got ${o.alpha}`,
    );
  }
}

/** Bs = [c_1 B_1 | ... | c_K B_K] (out x R) and AsT = [A_1; ...; A_K]^T (in x R), row-major. */
function stackFactors(
  pairs: readonly FactorPair[],
  inFeatures: number,
  outFeatures: number,
  stackedRank: number,
): { bs: Float64Array; asT: Float64Array } {
  const bs = new Float64Array(outFeatures * stackedRank);
  const asT = new Float64Array(inFeatures * stackedRank);
  let offset = 0;
  for (const { a, b, rank, scale, weight } of pairs) {
    const c = weight * scale;
    for (let i = 0; i < outFeatures; i++) {
      for (let j = 0; j < rank; j++) bs[i * stackedRank + offset + j] = c * b[i * rank + j];
    }
    for (let j = 0; j < rank; j++) {
      for (let i = 0; i < inFeatures; i++) asT[i * stackedRank + offset + j] = a[j * inFeatures + i];
    }
    offset += rank;
  }
  return { bs, asT };
}

/** M = Rb Ra^T (pb x pa). Terms t < max(i, j) are products with an exact +0 and leave the sum at +0. */
function coreProduct(
  rb: Float64Array,
  ra: Float64Array,
  pb: number,
  pa: number,
  stackedRank: number,
): Float64Array {
  const core = new Float64Array(pb * pa);
  for (let i = 0; i < pb; i++) {
    for (let j = 0; j < pa; j++) {
      let sum = 0;
      for (let t = Math.max(i, j); t < stackedRank; t++)
        sum += rb[i * stackedRank + t] * ra[j * stackedRank + t];
      core[i * pa + j] = sum;
    }
  }
  return core;
}

/** The first `kept` columns of a row-major rows x cols matrix. */
function leadingColumns(x: Float64Array, rows: number, cols: number, kept: number): Float64Array {
  const out = new Float64Array(rows * kept);
  for (let i = 0; i < rows; i++) for (let j = 0; j < kept; j++) out[i * kept + j] = x[i * cols + j];
  return out;
}

function checkPair(pair: FactorPair, k: number, inFeatures: number, outFeatures: number): void {
  checkPositiveInteger(`pairs[${k}].rank`, pair.rank);
  checkPositiveFinite(`pairs[${k}].scale`, pair.scale);
  checkPositiveFinite(`pairs[${k}].weight`, pair.weight);
  checkFactor(`pairs[${k}].a`, pair.a, pair.rank * inFeatures, `[${pair.rank}, ${inFeatures}]`);
  checkFactor(`pairs[${k}].b`, pair.b, outFeatures * pair.rank, `[${outFeatures}, ${pair.rank}]`);
}

/** Throws AggregationError naming `label` unless `values` has `expected` values, all finite. */
export function checkFactor(
  label: string,
  values: Float32Array | Float64Array,
  expected: number,
  shape: string,
): void {
  if (values.length !== expected) {
    throw new AggregationError(
      'AGGREGATION_SHAPE',
      `${label} has ${values.length} values; its shape ${shape} needs ${expected}`,
    );
  }
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new AggregationError('AGGREGATION_NOT_FINITE', `${label} holds ${values[i]} at flat index ${i}`);
    }
  }
}

function checkPositiveInteger(field: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new AggregationError('AGGREGATION_SHAPE', `${field} must be a positive integer, got ${value}`);
  }
}

function checkPositiveFinite(field: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0) {
    const code = field.endsWith('weight') ? 'AGGREGATION_WEIGHT' : 'AGGREGATION_CONFIG';
    throw new AggregationError(code, `${field} must be a positive finite number, got ${value}`);
  }
}
