// One-time enrolment invites. The coordinator keeps only a hash of each token, in an append-only
// file (invites.jsonl) that `fedit coordinator invite` and a running coordinator can both append
// to safely (single small O_APPEND writes); the state of an invite is the fold of its lines.

import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FeditError, createInviteToken, formatInvite, publicIdentity } from '@fedit/shared';
import { openFederationDir } from './dir.ts';

export interface InviteState {
  tokenHash: string;
  createdAt: string;
  expiresAt?: string;
  note?: string;
  usedBy?: string;
  usedAt?: string;
}

type InviteLine =
  | { type: 'created'; tokenHash: string; createdAt: string; expiresAt?: string; note?: string }
  | { type: 'used'; tokenHash: string; by: string; at: string };

export const tokenHash = (token: Uint8Array) =>
  createHash('sha256').update('fedit/invite-token/v1').update(token).digest('hex');

const invitesPath = (root: string) => join(root, 'invites.jsonl');

export function readInvites(root: string): Map<string, InviteState> {
  const path = invitesPath(root);
  const out = new Map<string, InviteState>();
  if (!existsSync(path)) return out;
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let l: InviteLine;
    try {
      l = JSON.parse(line) as InviteLine;
    } catch {
      if (i === lines.length - 1) return; // a torn last line from a crash: that invite was never handed out
      throw new FeditError('INVITES_DAMAGED', `${path}:${i + 1}: not valid JSON`);
    }
    if (l.type === 'created')
      out.set(l.tokenHash, {
        tokenHash: l.tokenHash,
        createdAt: l.createdAt,
        expiresAt: l.expiresAt,
        note: l.note,
      });
    else if (l.type === 'used') {
      const s = out.get(l.tokenHash);
      if (s) Object.assign(s, { usedBy: l.by, usedAt: l.at });
    }
  });
  return out;
}

function appendLine(root: string, line: InviteLine): void {
  appendFileSync(invitesPath(root), JSON.stringify(line) + '\n', { mode: 0o600 });
}

/** A new invite string for the coordinator at `url`; only its hash is kept here. */
export function createInvite(
  root: string,
  options: { url: string; expiresInHours?: number; note?: string },
): string {
  const { config, identity } = openFederationDir(root);
  const token = createInviteToken();
  const now = Date.now();
  const expiresAt = options.expiresInHours ? now + options.expiresInHours * 3600_000 : undefined;
  appendLine(root, {
    type: 'created',
    tokenHash: tokenHash(token),
    createdAt: new Date(now).toISOString(),
    expiresAt: expiresAt ? new Date(expiresAt).toISOString() : undefined,
    note: options.note,
  });
  return formatInvite({
    url: options.url,
    federation: config.id,
    coordinator: publicIdentity(identity),
    token,
    expiresAt,
  });
}

/** Checks a presented token and marks it used by `participant`; throws a named refusal otherwise. */
export function redeemInvite(
  root: string,
  token: Uint8Array,
  participant: string,
  refuse: (code: string, message: string) => never,
): void {
  const hash = tokenHash(token);
  const state = readInvites(root).get(hash);
  if (!state) refuse('INVITE_UNKNOWN', "this invite is not one of this federation's");
  if (state!.usedBy) refuse('INVITE_USED', 'this invite was already used; ask the operator for a new one');
  if (state!.expiresAt && Date.parse(state!.expiresAt) < Date.now())
    refuse('INVITE_EXPIRED', 'this invite has expired; ask the operator for a new one');
  appendLine(root, { type: 'used', tokenHash: hash, by: participant, at: new Date().toISOString() });
}
