// One round of secure aggregation in memory (no networking): Bonawitz et al. (CCS 2017) with the
// SecAgg+ graph (graph.ts). For participant i with X25519 key pair (sk_i, pk_i), self seed b_i and
// neighbours N(i) (all others in the complete graph):
//
//   masked input   y_i = x_i + PRG(b_i) + Σ_(j∈N(i)) sign(i,j)·PRG(s_ij)  mod 2^32     (prg.ts)
//   shares         b_i and sk_i are each split t-of-m over the holders H_i = N(i) ∪ {i}, ascending,
//                  the holder at position q (0-based) getting the share at x = q + 1    (shamir.ts)
//   unmasking      U = those whose y arrived, D = the rest. Holders reveal b_i's shares for i ∈ U
//                  and sk_d's shares for d ∈ D, never both kinds for one participant (ShareHolder
//                  refuses, whatever order the coordinator asks in). Then
//                  Σ_(i∈U) x_i = Σ_(i∈U) y_i − Σ_(i∈U) PRG(b_i)
//                                − Σ_(d∈D) Σ_(j∈U∩N(d)) sign(j,d)·PRG(s_jd)           mod 2^32
//                  (masks between two survivors cancel in the sum; s_jd is re-derived from the
//                  reconstructed sk_d and pk_j, and sk_d is checked against the advertised pk_d)
//
// Below t survivors the round is refused before anything is reconstructed: with fewer than t
// shares per secret nothing can be, and an honest holder answers no request that names fewer.

import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { checkIds, type MaskGraph } from './graph.ts';
import { addMask, addModular, checkBytes, checkInteger, maskSign, pairSeed, SEED_BYTES } from './prg.ts';
import { SecAggError } from './secagg-error.ts';
import { decodeShare, encodeShare, reconstructSecret, splitSecret, type Share } from './shamir.ts';

/** A participant's secrets for one round; only `id` and `publicKey` are ever sent. */
export interface SecAggParticipant {
  id: number;
  publicKey: Uint8Array;
  secretKey: Uint8Array;
  selfSeed: Uint8Array;
}

/** The round as every party sees it: ids, graph, threshold, advertised keys, vector length. */
export interface SecAggRound {
  round: number;
  graph: MaskGraph;
  threshold: number;
  publicKeys: ReadonlyMap<number, Uint8Array>;
  length: number;
}

/** The two shares one holder keeps of one owner's secrets (68-byte encodings). */
export interface HeldShares {
  self: Uint8Array;
  key: Uint8Array;
}

/** What a holder reveals: shares of b_i for survivors, of sk_d for the dropped. */
export interface ShareReveal {
  holder: number;
  self: ReadonlyMap<number, Uint8Array>;
  key: ReadonlyMap<number, Uint8Array>;
}

/** A fresh participant: an X25519 key pair and a self seed from the system's CSPRNG. */
export function createParticipant(id: number): SecAggParticipant {
  checkInteger(id, 0xffffffff, 'id');
  const keys = nacl.box.keyPair();
  return {
    id,
    publicKey: keys.publicKey,
    secretKey: keys.secretKey,
    selfSeed: new Uint8Array(randomBytes(SEED_BYTES)),
  };
}

/** H_i: participant `id` and its neighbours, ascending (the share holders of id's secrets). */
export function shareHolders(round: SecAggRound, id: number): number[] {
  const neighbours = round.graph.get(id);
  if (!neighbours) throw new SecAggError('SECAGG_INPUT', `participant ${id} is not in the round's graph`);
  return [id, ...neighbours].sort((a, b) => a - b);
}

/** Validates a round description; throws SecAggError naming the field. */
export function checkRound(round: SecAggRound): void {
  checkInteger(round.round, Number.MAX_SAFE_INTEGER, 'round');
  checkInteger(round.length, 2 ** 28, 'length');
  const ids = checkIds([...round.graph.keys()]);
  for (const id of ids) {
    checkBytes(round.publicKeys.get(id), SEED_BYTES, `publicKeys[${id}]`);
    const holders = shareHolders(round, id);
    if (!Number.isInteger(round.threshold) || round.threshold < 2 || round.threshold > holders.length) {
      throw new SecAggError(
        'SECAGG_INPUT',
        `threshold must be an integer from 2 to ${holders.length} (participant ${id}'s holders)`,
      );
    }
    for (const j of round.graph.get(id) ?? []) {
      if (!round.graph.get(j)?.includes(id))
        throw new SecAggError('SECAGG_INPUT', `graph is not symmetric at ${id}–${j}`);
    }
  }
}

/** Splits `p`'s self seed and secret key over its holders: holder id -> its two shares. */
export function shareSecrets(round: SecAggRound, p: SecAggParticipant): Map<number, HeldShares> {
  checkRound(round);
  const holders = shareHolders(round, p.id);
  const self = splitSecret(p.selfSeed, round.threshold, holders.length);
  const key = splitSecret(p.secretKey, round.threshold, holders.length);
  return new Map(holders.map((h, q) => [h, { self: encodeShare(self[q]), key: encodeShare(key[q]) }]));
}

/** y_i: the encoded input `x` (length round.length) masked with b_i and every pair mask of i. */
export function maskInput(round: SecAggRound, p: SecAggParticipant, x: Uint32Array): Uint32Array {
  checkRound(round);
  checkBytes(p.secretKey, SEED_BYTES, 'secretKey');
  checkBytes(p.selfSeed, SEED_BYTES, 'selfSeed');
  if (!(x instanceof Uint32Array) || x.length !== round.length) {
    throw new SecAggError('SECAGG_INPUT', `input must be a Uint32Array of ${round.length} words`);
  }
  const peers = (round.graph.get(p.id) ?? []).map((j) => [j, round.publicKeys.get(j) as Uint8Array] as const);
  return applyMasks(x, p, peers, round.round);
}

/**
 * y = x + PRG(b) + Σ_(j ∈ peers) sign(id, j)·PRG(s_(id,j)) mod 2^32: the masking of the header
 * with an explicit peer list (a secure round masks only with neighbours that shared their keys).
 */
export function applyMasks(
  x: Uint32Array,
  p: Pick<SecAggParticipant, 'id' | 'secretKey' | 'selfSeed'>,
  peers: Iterable<readonly [number, Uint8Array]>,
  round: number,
): Uint32Array {
  const y = Uint32Array.from(x);
  addMask(y, p.selfSeed, 1);
  for (const [j, peerKey] of peers)
    addMask(y, pairSeed(p.secretKey, peerKey, p.id, j, round), maskSign(p.id, j));
  return y;
}

/** Removes from `sum`, in place, dropped `id`'s pair masks with `survivors` (id -> public key). */
export function removeDroppedMasks(
  sum: Uint32Array,
  dropped: { id: number; secretKey: Uint8Array },
  survivors: Iterable<readonly [number, Uint8Array]>,
  round: number,
): void {
  // Survivor j added sign(j, d)·PRG(s_jd); s_jd = s_dj is re-derived from d's secret key.
  for (const [j, publicKey] of survivors)
    addMask(
      sum,
      pairSeed(dropped.secretKey, publicKey, dropped.id, j, round),
      maskSign(j, dropped.id) === 1 ? -1 : 1,
    );
}

/**
 * One holder's shares and memory of what it revealed. It refuses (SecAggError SECAGG_REFUSED) a
 * request naming one participant as both survivor and dropped, one that asks for the other kind of
 * share of a participant it already answered for, and one with fewer survivors than the threshold.
 */
export class ShareHolder {
  readonly #revealed = new Map<number, 'self' | 'key'>();

  constructor(
    readonly id: number,
    readonly held: ReadonlyMap<number, HeldShares>,
    readonly threshold: number,
  ) {
    checkInteger(id, 0xffffffff, 'id');
    if (!Number.isInteger(threshold) || threshold < 2) {
      throw new SecAggError('SECAGG_INPUT', 'threshold must be an integer of at least 2');
    }
  }

  reveal(survivors: readonly number[], dropped: readonly number[]): ShareReveal {
    for (const [field, list] of [
      ['survivors', survivors],
      ['dropped', dropped],
    ] as const) {
      if (!Array.isArray(list)) throw new SecAggError('SECAGG_INPUT', `${field} must be an array of ids`);
      list.forEach((id, k) => checkInteger(id, 0xffffffff, `${field}[${k}]`));
    }
    const kinds = new Map<number, 'self' | 'key'>();
    for (const i of survivors) kinds.set(i, 'self');
    for (const d of dropped) {
      if (kinds.has(d))
        throw new SecAggError('SECAGG_REFUSED', `participant ${d} is named both survivor and dropped`);
      kinds.set(d, 'key');
    }
    if (new Set(survivors).size < this.threshold) {
      throw new SecAggError(
        'SECAGG_REFUSED',
        `${new Set(survivors).size} survivors, below the threshold ${this.threshold}`,
      );
    }
    for (const [owner, kind] of kinds) {
      const before = this.#revealed.get(owner);
      if (before !== undefined && before !== kind) {
        throw new SecAggError(
          'SECAGG_REFUSED',
          `already revealed participant ${owner}'s ${before} share; refusing its ${kind} share`,
        );
      }
    }
    // Checked in full before anything is recorded, so a refused request reveals nothing.
    const self = new Map<number, Uint8Array>();
    const key = new Map<number, Uint8Array>();
    for (const [owner, kind] of kinds) {
      const shares = this.held.get(owner);
      if (!shares) continue;
      this.#revealed.set(owner, kind);
      (kind === 'self' ? self : key).set(owner, shares[kind]);
    }
    return { holder: this.id, self, key };
  }
}

function collectShares(
  round: SecAggRound,
  owner: number,
  reveals: readonly ShareReveal[],
  kind: 'self' | 'key',
): Share[] {
  return collectOwnerShares(shareHolders(round, owner), round.threshold, owner, reveals, kind);
}

/**
 * The `kind` shares of `owner` the reveals hold, each at its holder's evaluation point (its
 * position in `holders`, ascending, plus one); at least `threshold` of them, or SecAggError.
 */
export function collectOwnerShares(
  holders: readonly number[],
  threshold: number,
  owner: number,
  reveals: readonly ShareReveal[],
  kind: 'self' | 'key',
): Share[] {
  const shares: Share[] = [];
  for (const r of reveals) {
    const bytes = (kind === 'self' ? r.self : r.key).get(owner);
    if (!bytes) continue;
    const share = decodeShare(bytes);
    // A share must sit at its holder's evaluation point: one holder cannot pass off another's.
    if (share.x !== holders.indexOf(r.holder) + 1) {
      throw new SecAggError(
        'SECAGG_SHARES',
        `holder ${r.holder}'s ${kind} share of ${owner} is not at its evaluation point`,
      );
    }
    shares.push(share);
  }
  if (shares.length < threshold) {
    throw new SecAggError(
      'SECAGG_SHARES',
      `${shares.length} ${kind} shares of participant ${owner}, below the threshold ${threshold}`,
    );
  }
  return shares;
}

/** Σ_(i∈U) x_i mod 2^32 from the masked inputs that arrived and the holders' reveals. */
export function unmaskSum(
  round: SecAggRound,
  masked: ReadonlyMap<number, Uint32Array>,
  reveals: readonly ShareReveal[],
): Uint32Array {
  checkRound(round);
  const ids = [...round.graph.keys()].sort((a, b) => a - b);
  const survivors = ids.filter((id) => masked.has(id));
  if (survivors.length !== masked.size)
    throw new SecAggError('SECAGG_INPUT', 'masked names a participant outside the round');
  if (survivors.length < round.threshold) {
    throw new SecAggError(
      'SECAGG_REFUSED',
      `${survivors.length} survivors, below the threshold ${round.threshold}`,
    );
  }
  const sum = new Uint32Array(round.length);
  for (const i of survivors) addModular(sum, masked.get(i) as Uint32Array);
  for (const i of survivors)
    addMask(sum, reconstructSecret(collectShares(round, i, reveals, 'self'), round.threshold), -1);
  for (const d of ids.filter((id) => !masked.has(id))) {
    const neighbours = (round.graph.get(d) ?? []).filter((j) => masked.has(j));
    if (neighbours.length === 0) continue;
    const secretKey = reconstructSecret(collectShares(round, d, reveals, 'key'), round.threshold);
    const advertised = round.publicKeys.get(d) as Uint8Array;
    if (!nacl.verify(nacl.scalarMult.base(secretKey), advertised)) {
      throw new SecAggError(
        'SECAGG_SHARES',
        `participant ${d}'s reconstructed key does not match its advertised public key`,
      );
    }
    const peers = neighbours.map((j) => [j, round.publicKeys.get(j) as Uint8Array] as const);
    removeDroppedMasks(sum, { id: d, secretKey }, peers, round.round);
  }
  return sum;
}

/** The plain modular sum Σ x_i mod 2^32 the unmasked sum must equal (for tests and audits). */
export function plainSum(inputs: Iterable<Uint32Array>, length: number): Uint32Array {
  const sum = new Uint32Array(length);
  for (const x of inputs) addModular(sum, x);
  return sum;
}
