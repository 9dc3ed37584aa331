// A chat reply, from the backend's side: the worker generates it with the base model and the
// newest global adapter it can have, the page receives it piece by piece as 'chat' events, and the
// last event says what it was generated with, in words (shown under the reply, kept in the log).

import type { RoundHistoryEntry } from '../core/federation/index.ts';
import type { AppEvent, ChatSource } from './api.ts';
import type { AppLog } from './app-log.ts';
import { shortHash } from './federation-summary.ts';
import type { Job, KnownAdapter, WorkerLink } from './worker-protocol.ts';

/** Longest chat reply, in tokens. */
export const CHAT_MAX_NEW_TOKENS = 96;

export type ChatRequest = Omit<Extract<Job, { kind: 'chat' }>, 'kind' | 'adapters' | 'maxNewTokens'>;

/**
 * Has the worker reply to `request` with the global adapters of `history`, streaming the reply to
 * `emit`; a failure is the last event's `error`, not a rejection.
 */
export async function replyInWorker(
  worker: WorkerLink,
  request: ChatRequest,
  history: readonly RoundHistoryEntry[],
  emit: (event: Extract<AppEvent, { type: 'chat' }>) => void,
  log: AppLog,
): Promise<void> {
  const id = request.chatId;
  const adapters = globalAdapters(history);
  try {
    const result = await worker.request(
      { kind: 'chat', ...request, adapters, maxNewTokens: CHAT_MAX_NEW_TOKENS },
      (piece) => emit({ type: 'chat', id, text: piece, done: false }),
    );
    const newest = adapters[0];
    const source: ChatSource = {
      adapter: result.adapter,
      newest: result.adapter !== undefined && result.adapter.hash === newest?.hash,
      problem: result.problem,
      newestKnown: newest,
    };
    const used = describeChatSource(source);
    if (result.problem) log.warn(`chat: ${used}`);
    emit({ type: 'chat', id, text: '', done: true, adapter: used, source });
  } catch (error) {
    const message = (error as Error).message;
    log.warn(`chat failed: ${message}`);
    emit({ type: 'chat', id, text: '', done: true, error: message });
  }
}

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
