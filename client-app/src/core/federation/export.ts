// `fedit client export`: a global adapter from this computer's adapter cache as a PEFT adapter
// folder with its model card (shared/src/federation/result-adapter.ts writes it). Works offline:
// the membership says which federation and under which settings, results.ts which cached file is
// which round's adapter, and the cache read checks the file's tensors hash to that name.

import { resolve } from 'node:path';
import { writeFederationAdapter, type FederationResult, type LoraAdapter } from '@fedit/shared';
import { readCachedAdapter } from './adapters.ts';
import { FederationError } from './errors.ts';
import { readRoundResults, type RoundResult } from './results.ts';
import { parseFederationSettings } from './settings.ts';
import { membershipPath, selectMembership } from './store.ts';

export interface ExportCachedOptions {
  /** The federation; default: the only one this home has joined. */
  federation?: string;
  /** The round whose global adapter to export; default: the last one that aggregated. */
  round?: number;
  /** The adapter folder to write; must be new or empty. */
  out: string;
}

export interface ExportedCached {
  out: string;
  adapter: LoraAdapter;
  result: FederationResult;
}

/** Writes a cached global adapter of a federation this home joined as a PEFT adapter folder. */
export async function exportCachedAdapter(
  home: string,
  options: ExportCachedOptions,
): Promise<ExportedCached> {
  const membership = await selectMembership(home, options.federation);
  const config = parseFederationSettings(membership.config, membershipPath(home, membership.federation));
  const results = await readRoundResults(home, membership.federation);
  const chosen = pickRound(results, options.round, membership.federation);
  const tensors = await readCachedAdapter(home, chosen.adapterHash);
  if (!tensors) {
    throw new FederationError(
      'FEDERATION_ADAPTER',
      `round ${chosen.round}'s global adapter (${chosen.adapterHash}) is not in this computer's adapter cache (fedit home: ${home}): a participant keeps the adapters of rounds it trained in and the final one, the newest few; run \`fedit client run\` to fetch the final adapter, or ask the operator for \`fedit coordinator export\``,
    );
  }
  const upTo = results.filter((r) => r.outcome === 'aggregated' && r.round <= chosen.round);
  const { rule, ...ruleSettings } = config.aggregation;
  const result: FederationResult = {
    config,
    round: chosen.round,
    adapterHash: chosen.adapterHash,
    roundsAggregated: upTo.length,
    contributions: upTo.reduce((sum, r) => sum + r.updates, 0),
    rule: { name: rule, config: ruleSettings },
    coordinatorKey: membership.coordinator.sign,
    exportedBy: 'participant',
  };
  const adapter = await writeFederationAdapter(options.out, tensors, result);
  return { out: resolve(options.out), adapter, result };
}

function pickRound(
  results: readonly RoundResult[],
  round: number | undefined,
  federation: string,
): RoundResult {
  const aggregated = results.filter((r) => r.outcome === 'aggregated');
  const known = aggregated.map((r) => r.round).join(', ') || 'none';
  if (round === undefined) {
    const last = aggregated.at(-1);
    if (!last)
      throw new FederationError(
        'FEDERATION_ADAPTER',
        `no round of federation ${federation} has aggregated while this computer took part, so there is no global adapter to export`,
      );
    return last;
  }
  const found = results.find((r) => r.round === round);
  if (found?.outcome === 'aggregated') return found;
  throw new FederationError(
    'FEDERATION_ADAPTER',
    found
      ? `--round ${round}: that round was aborted and produced no global adapter; rounds that aggregated: ${known}`
      : `--round ${round}: this computer did not see that round of federation ${federation} aggregate; rounds it saw aggregate: ${known}`,
  );
}
