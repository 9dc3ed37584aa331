// What makes two records "the same conversation": the same system prompt and the same turns, once
// whitespace is normalised (trimmed, runs collapsed to one space). Category and source do not count.
// Duplicates are found, and the held-out split is drawn, by this key, so copies of one
// conversation always land on the same side of the split.

import { createHash } from 'node:crypto';
import type { Conversation } from './types.ts';

const squash = (s: string | undefined): string => (s ?? '').trim().replace(/\s+/g, ' ');

/** A SHA-256 (hex) of the normalised conversation. */
export function conversationKey(c: Conversation): string {
  const parts = [
    squash(c.system),
    ...c.turns.map((t) => [t.role, squash(t.content), t.role === 'user' ? squash(t.input) : '']),
  ];
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}
