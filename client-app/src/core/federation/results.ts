// What a participant knows of its federation's results: for each round it saw close, the outcome,
// the global adapter after it (by content hash: the adapter cache's key) and how many updates the
// coordinator counted. The adapter cache alone is keyed by hash and shared by every federation, so
// without this record nobody can tell which cached file is round N's adapter of which federation.
//
//   <home>/results/<federation>.json   { version: 1, rounds: [{ round, outcome, adapterHash, updates,
//                                        epsilon? }] }   (epsilon: with differential privacy)
//
// Written on every 'round:closed' (participant.ts); read by `fedit client export` (export.ts). The
// file's form, reading and writing are rounds-file.ts's, shared with the held-out figures.
import { join } from 'node:path';
import { CONTENT_HASH_PATTERN, FEDERATION_ID_PATTERN } from '@fedit/shared';
import { FederationError } from './errors.ts';
import { keepRoundEntry, readRoundEntries, type RoundEntryKind } from './rounds-file.ts';
import { RESULTS_DIR } from './store.ts';

export { RESULTS_DIR };

export interface RoundResult {
  round: number;
  outcome: 'aggregated' | 'aborted';
  /** The global adapter after the round (unchanged when aborted). */
  adapterHash: string;
  /** Updates the coordinator counted into the aggregate. */
  updates: number;
  /** With differential privacy: the epsilon the signed round record says was spent after it. */
  epsilon?: string;
}

export function resultsPath(home: string, federation: string): string {
  if (!FEDERATION_ID_PATTERN.test(federation))
    throw new FederationError(
      'FEDERATION_NOT_JOINED',
      `${JSON.stringify(federation)} is not a federation id`,
    );
  return join(home, RESULTS_DIR, `${federation}.json`);
}

const ROUND_RESULTS: RoundEntryKind<RoundResult> = {
  isEntry: isRoundResult,
  described: 'round results ({ round, outcome, adapterHash, updates })',
};

/** The rounds this home saw close in `federation`, sorted by round; [] when none. */
export async function readRoundResults(home: string, federation: string): Promise<RoundResult[]> {
  return readRoundEntries(resultsPath(home, federation), ROUND_RESULTS);
}

/** Records (or replaces) round `result.round`'s result. */
export async function recordRoundResult(
  home: string,
  federation: string,
  result: RoundResult,
): Promise<void> {
  await keepRoundEntry(resultsPath(home, federation), ROUND_RESULTS, result);
}

function isRoundResult(value: unknown): value is RoundResult {
  const r = value as RoundResult;
  return (
    typeof r === 'object' &&
    r !== null &&
    Number.isSafeInteger(r.round) &&
    r.round >= 0 &&
    (r.outcome === 'aggregated' || r.outcome === 'aborted') &&
    typeof r.adapterHash === 'string' &&
    CONTENT_HASH_PATTERN.test(r.adapterHash) &&
    Number.isSafeInteger(r.updates) &&
    r.updates >= 0 &&
    (r.epsilon === undefined ||
      (typeof r.epsilon === 'string' && r.epsilon.length <= 32 && Number.isFinite(Number(r.epsilon))))
  );
}
