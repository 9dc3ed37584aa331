// The coordinator's DP noise seeds in the federation folder (docs/privacy.md):
//
//   noise/round-<n>.seed   hex of the 32-byte seed of round n's central DP noise, then a newline;
//                          owner-only (0600) in noise/ (0700)
//
// The coordinator draws the seed when it opens round n and writes this file before it appends the
// round-open record, which commits to the seed (dp-step.ts: noiseSeedCommitment): a crash between
// them leaves a seed no record names, and the restart aborts the open round as for any round. The
// seed never goes into a record or a message: whoever knows it can subtract the noise from the
// published adapter. An auditor given the folder regenerates the noise from these files and checks
// the adapter bit for bit; without them the audit says the noise went unchecked.

import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FeditError } from '../errors.ts';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, writeFileAtomic } from '../fs/atomic.ts';
import { NOISE_SEED_BYTES } from '../aggregation/dp-step.ts';

const SEED_TEXT = /^[0-9a-f]{64}\n?$/;

/** Where round `round`'s noise seed is kept under the federation folder `root`. */
export function noiseSeedPath(root: string, round: number): string {
  if (!Number.isSafeInteger(round) || round < 1)
    throw new RangeError(`round must be an integer >= 1, got ${round}`);
  return join(root, 'noise', `round-${round}.seed`);
}

/** Writes the seed owner-only from its creation, durably (before the record that commits to it). */
export async function writeNoiseSeed(root: string, round: number, seed: Uint8Array): Promise<void> {
  if (!(seed instanceof Uint8Array) || seed.length !== NOISE_SEED_BYTES)
    throw new RangeError(`the noise seed must be ${NOISE_SEED_BYTES} bytes`);
  mkdirSync(join(root, 'noise'), { recursive: true, mode: PRIVATE_DIR_MODE });
  await writeFileAtomic(noiseSeedPath(root, round), Buffer.from(seed).toString('hex') + '\n', {
    mode: PRIVATE_FILE_MODE,
  });
}

/**
 * Round `round`'s seed, or undefined when the folder has no file for it (an auditor sent the log
 * and blobs only). A file that is there but not 64 hex digits is an error naming it.
 */
export function readNoiseSeed(root: string, round: number): Uint8Array | undefined {
  const path = noiseSeedPath(root, round);
  if (!existsSync(path)) return undefined;
  const damaged = () =>
    new FeditError('NOISE_SEED_DAMAGED', `${path}: not ${2 * NOISE_SEED_BYTES} lowercase hex digits`);
  // Bounded before reading: a seed file is 65 bytes.
  if (statSync(path).size > 2 * NOISE_SEED_BYTES + 1) throw damaged();
  const text = readFileSync(path, 'utf8');
  if (!SEED_TEXT.test(text)) throw damaged();
  return new Uint8Array(Buffer.from(text.slice(0, 2 * NOISE_SEED_BYTES), 'hex'));
}
