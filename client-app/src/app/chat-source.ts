// Which global adapter a chat reply may use, and what it was generated with, in words: the page
// shows it under the reply, and the log keeps it.

import type { RoundHistoryEntry } from '../core/federation/index.ts';
import type { ChatSource } from './api.ts';
import { shortHash } from './federation-summary.ts';
import type { KnownAdapter } from './worker-protocol.ts';

/** The global adapters of the rounds this computer saw close, newest first, one per hash. */
export function globalAdapters(history: readonly RoundHistoryEntry[]): KnownAdapter[] {
  const seen = new Set<string>();
  const adapters: KnownAdapter[] = [];
  for (const entry of [...history].reverse()) {
    if (entry.outcome !== 'aggregated' || !entry.adapterHash || seen.has(entry.adapterHash)) continue;
    seen.add(entry.adapterHash);
    adapters.push({ round: entry.round, hash: entry.adapterHash });
  }
  return adapters;
}

/** A chat reply's source in words, for the page and the log. */
export function describeChatSource(source: ChatSource): string {
  const { adapter, newestKnown, problem } = source;
  const name = (a: KnownAdapter) => `the global adapter after round ${a.round} (${shortHash(a.hash)})`;
  if (!newestKnown) {
    return 'the base model alone, no adapter yet: no round of the federation has closed since this computer joined';
  }
  if (adapter && source.newest) return `the federation's newest global adapter: ${name(adapter)}`;
  const why = problem ? `: ${problem}` : '';
  if (adapter) {
    return `an older global adapter, ${name(adapter)}: the newest, after round ${newestKnown.round}, cannot be used on this computer${why}`;
  }
  return `the base model alone, no adapter: ${name(newestKnown)} cannot be used on this computer${why}`;
}
