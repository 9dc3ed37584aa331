// The selection seeds a coordinator cannot choose: a hash chain it commits to at init and walks
// back one value per round (Lamport 1981, "Password authentication with insecure communication";
// the same construction as S/KEY and TESLA's key chains). Every seed the federation will ever
// use is fixed by the commitment in its first record, before any participant enrolled; opening a
// round reveals the next value, and anyone holding the log checks it against the one before.
//
//   H(x)        SHA-256(UTF-8("fedit/seed-chain/v1") || x), for x of 32 bytes; H^0(x) = x,
//               H^(i+1)(x) = H(H^i(x))
//   secret s    32 random bytes, drawn at `coordinator init` and kept owner-only in the
//               federation folder (keys/seed-chain.json); never in the log
//   length N    how many round-open records the chain covers: rounds * 8 + 64 at init
//               (SEED_CHAIN_ROUND_FACTOR, SEED_CHAIN_SPARE), so aborted rounds have reveals too
//   commitment  c = H^N(s), in the first config record: body.seedChain = { commitment: hex(c),
//               length: N } (hex: 64 lowercase digits)
//   reveal j    the j-th round-open record after the commitment (j = 1, 2, ...; aborted rounds
//               and their retries count) carries selection.reveal = hex(v_j), v_j = H^(N-j)(s);
//               j <= N. Check: H(v_j) = v_(j-1), v_0 = c
//   seed        selection.seed = hex(SHA-256(UTF-8("fedit/round-seed/v1") || v_j)), 64 lowercase
//               hex digits, which selection.ts draws the round's participants with
//
// numpy-free equivalent in Python: H = lambda x: hashlib.sha256(b"fedit/seed-chain/v1" + x).digest();
// seed = hashlib.sha256(b"fedit/round-seed/v1" + v).hexdigest().
//
// Why the seed is not mixed with the previous record's hash: that hash covers the record's time,
// which the coordinator sets to the millisecond, so mixing it in would hand back the choice the
// chain takes away (sign the previous record again at another millisecond until the draw suits).
// A value fixed at init leaves nothing to grind: a coordinator that wanted K candidate seeds for
// round-open j would need K values whose hash is v_(j-1), and it holds exactly one.

import { createHash, randomBytes } from 'node:crypto';

const CHAIN_DOMAIN = new TextEncoder().encode('fedit/seed-chain/v1');
const SEED_DOMAIN = new TextEncoder().encode('fedit/round-seed/v1');
const HEX_32 = /^[0-9a-f]{64}$/;

/** N = rounds * SEED_CHAIN_ROUND_FACTOR + SEED_CHAIN_SPARE: room for aborted rounds and retries. */
export const SEED_CHAIN_ROUND_FACTOR = 8;
export const SEED_CHAIN_SPARE = 64;

/** What the first config record commits to (body.seedChain). */
export interface SeedChainCommitment {
  /** hex(H^N(s)). */
  commitment: string;
  /** N: the round-open records the chain covers. */
  length: number;
}

/** The coordinator's side of the chain: the secret, and the commitment it publishes. */
export interface SeedChain extends SeedChainCommitment {
  /** hex(s): kept owner-only, never logged. */
  secret: string;
}

/** Whether `value` is a chain value as records write it: 64 lowercase hex digits. */
export function isSeedChainValue(value: unknown): value is string {
  return typeof value === 'string' && HEX_32.test(value);
}

/** H(x) for a chain value in hex. */
export function seedChainStep(value: string): string {
  return createHash('sha256').update(CHAIN_DOMAIN).update(Buffer.from(value, 'hex')).digest('hex');
}

/** H^times(value). */
export function seedChainWalk(value: string, times: number): string {
  let v = value;
  for (let i = 0; i < times; i++) v = seedChainStep(v);
  return v;
}

/** The chain length a federation of `rounds` rounds commits to. */
export function seedChainLength(rounds: number): number {
  return rounds * SEED_CHAIN_ROUND_FACTOR + SEED_CHAIN_SPARE;
}

/** A new chain: a random secret (or the one given, for tests) and its commitment H^N(s). */
export function createSeedChain(length: number, secret: Uint8Array = randomBytes(32)): SeedChain {
  if (!Number.isSafeInteger(length) || length < 1)
    throw new RangeError(`the seed chain length must be a positive integer, got ${length}`);
  if (secret.length !== 32) throw new RangeError('the seed chain secret must be 32 bytes');
  const hex = Buffer.from(secret).toString('hex');
  return { secret: hex, length, commitment: seedChainWalk(hex, length) };
}

/** v_j = H^(N-j)(s), the value round-open j reveals; undefined once the chain is spent (j > N). */
export function seedChainReveal(chain: SeedChain, index: number): string | undefined {
  if (!Number.isSafeInteger(index) || index < 1 || index > chain.length) return undefined;
  return seedChainWalk(chain.secret, chain.length - index);
}

/** The selection seed a reveal fixes: hex(SHA-256("fedit/round-seed/v1" || v_j)). */
export function seedFromReveal(reveal: string): string {
  return createHash('sha256').update(SEED_DOMAIN).update(Buffer.from(reveal, 'hex')).digest('hex');
}
