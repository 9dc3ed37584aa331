// The coordinator's seed chain secret (shared/src/rounds/seed-chain.ts) in the federation folder:
//
//   keys/seed-chain.json   { "secret": hex(s), "length": N }, owner-only (0600) in keys/ (0700)
//
// The log holds only the commitment H^N(s). Without this file no round can open in a federation
// that committed to a chain (every round-open record must reveal the next value), so it is backed
// up with keys/coordinator.json; with it, a restarted coordinator continues the chain from where
// the log stands (FederationState.seedChain.revealed).

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  PRIVATE_FILE_MODE,
  FeditError,
  isSeedChainValue,
  seedChainReveal,
  seedChainWalk,
  writeFileAtomic,
  type SeedChain,
  type SeedChainCommitment,
  type SeedChainState,
} from '@fedit/shared';

/** Where a federation folder keeps its seed chain secret. */
export const seedChainPath = (root: string) => join(root, 'keys', 'seed-chain.json');

/** Writes the secret owner-only; the caller records the commitment in the config record. */
export async function writeSeedChain(root: string, chain: SeedChain): Promise<void> {
  const path = seedChainPath(root);
  // Owner-only from its creation: a chmod afterwards would leave the secret readable for a moment.
  await writeFileAtomic(
    path,
    JSON.stringify({ secret: chain.secret, length: chain.length }, null, 2) + '\n',
    {
      mode: PRIVATE_FILE_MODE,
    },
  );
}

/**
 * The secret behind the commitment the log records, checked against it; undefined for a log that
 * commits to no chain (a federation created before seed chains: its seeds stay random).
 */
export function readSeedChain(
  root: string,
  committed: SeedChainCommitment | undefined,
): SeedChain | undefined {
  if (!committed) return undefined;
  const path = seedChainPath(root);
  const damaged = (why: string) =>
    new FeditError(
      'FEDERATION_DAMAGED',
      `${path}: ${why}. The round log commits every round's selection seed to this secret, so no ` +
        'round can open without it: restore keys/seed-chain.json from your backup',
    );
  if (!existsSync(path)) throw damaged('the seed chain secret is missing');
  let secret: unknown;
  let length: unknown;
  try {
    ({ secret, length } = JSON.parse(readFileSync(path, 'utf8')) as { secret?: unknown; length?: unknown });
  } catch (err) {
    throw damaged(`not readable as JSON (${(err as Error).message})`);
  }
  if (!isSeedChainValue(secret)) throw damaged('"secret" is not 64 lowercase hex digits');
  if (length !== committed.length)
    throw damaged(`"length" is ${String(length)}, but the log commits to a chain of ${committed.length}`);
  if (seedChainWalk(secret, committed.length) !== committed.commitment)
    throw damaged('the secret is not the one behind the commitment in the round log');
  return { secret, length: committed.length, commitment: committed.commitment };
}

/**
 * What the next round-open record draws its selection with: the next value of the committed chain
 * (index = round-open records so far + 1), which fixes the seed; a random seed in a federation
 * created before seed chains (its log commits to none, and the audit says so).
 */
export function nextRoundSeed(
  committed: Readonly<SeedChainState> | undefined,
  chain: SeedChain | undefined,
): string | { reveal: string } {
  if (!committed) return randomBytes(16).toString('hex');
  const index = committed.revealed + 1;
  const reveal = chain && seedChainReveal(chain, index);
  if (reveal === undefined)
    throw new FeditError(
      'SEED_CHAIN_SPENT',
      `round-open record ${index} needs a value of the seed chain, which covers ${committed.length} ` +
        'round openings: the federation has opened (and aborted) more rounds than it committed seeds for',
    );
  return { reveal };
}
