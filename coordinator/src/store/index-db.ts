// The coordinator's index (lowdb): what it needs to answer quickly — participants and their keys,
// per-round summaries. It is a projection of the fold over the round log (FederationState, the
// one every reader of the log uses): a lost or damaged index is rebuilt from the log at every
// start; the log is the truth.

import { existsSync, readFileSync, renameSync } from 'node:fs';
import { JSONFilePreset } from 'lowdb/node';
import type { Low } from 'lowdb';
import { FederationState, type ParticipantState, type RoundRecord, type RoundState } from '@fedit/shared';

export interface ParticipantEntry {
  id: string;
  /** Ed25519 and X25519 public keys, hex. */
  signKey: string;
  boxKey: string;
  displayName: string;
  enrolledAt: string;
  revoked?: { at: string; reason: string };
}

export interface RoundSummary {
  round: number;
  status: 'open' | 'closed' | 'aborted';
  selected: string[];
  counted: string[];
  globalAdapterIn: string;
  globalAdapterOut?: string;
  reason?: string;
  metrics?: Record<string, string | number>;
  openedAt: string;
  closedAt?: string;
}

export interface IndexData {
  participants: Record<string, ParticipantEntry>;
  rounds: RoundSummary[];
}

export class CoordinatorIndex {
  /** The fold of the log (the same one the round log and the verifier keep); the index projects it. */
  #state = new FederationState();

  private constructor(private readonly db: Low<IndexData>) {}

  static async open(path: string, log: readonly RoundRecord[]): Promise<CoordinatorIndex> {
    // Only a cache of the log: a damaged file is set aside and rebuilt.
    if (existsSync(path)) {
      try {
        JSON.parse(readFileSync(path, 'utf8'));
      } catch {
        renameSync(path, `${path}.damaged-${Date.now()}`);
      }
    }
    const db = await JSONFilePreset<IndexData>(path, { participants: {}, rounds: [] });
    const index = new CoordinatorIndex(db);
    index.rebuildFromLog(log);
    await db.write();
    return index;
  }

  get data(): IndexData {
    return this.db.data;
  }

  /** Replaces the index with what the log says. */
  rebuildFromLog(log: readonly RoundRecord[]): void {
    this.#state = new FederationState();
    for (const record of log) this.#state.apply(record);
    this.db.data = project(this.#state);
  }

  /** Takes in the record just appended to the log; only the entry it touched is re-projected. */
  apply(record: RoundRecord): void {
    this.#state.apply(record);
    const data = this.db.data;
    if (record.kind === 'enrol' || record.kind === 'rename' || record.kind === 'revoke') {
      const id = record.body.participant;
      const participant = this.#state.participant(id);
      if (participant) data.participants[id] = participantEntry(id, participant);
    } else if (record.kind !== 'config') {
      const round = this.#state.rounds().get(record.round);
      const summary = round && roundSummary(round);
      const at = data.rounds.findIndex((r) => r.round === record.round);
      if (summary && at >= 0) data.rounds[at] = summary;
      else if (summary) data.rounds.push(summary);
    }
  }

  async save(): Promise<void> {
    await this.db.write();
  }
}

/** The index's view of the federation state. */
function project(state: FederationState): IndexData {
  const participants: Record<string, ParticipantEntry> = {};
  for (const [id, p] of state.participants()) participants[id] = participantEntry(id, p);
  const rounds = [...state.rounds().values()].flatMap((r) => roundSummary(r) ?? []);
  return { participants, rounds };
}

function participantEntry(id: string, p: Readonly<ParticipantState>): ParticipantEntry {
  return {
    id,
    signKey: p.publicKey,
    boxKey: p.boxKey ?? '',
    displayName: p.displayName ?? '',
    enrolledAt: p.enrolledAt,
    ...(p.revoked && { revoked: { ...p.revoked } }),
  };
}

/** A round's summary; undefined for a round the log never opened (only in a log that fails verification). */
function roundSummary(r: Readonly<RoundState>): RoundSummary | undefined {
  if (r.openedAt === undefined || r.globalAdapterIn === undefined) return undefined;
  return {
    round: r.round,
    status: r.status,
    selected: [...r.selected],
    counted: [...r.counted],
    globalAdapterIn: r.globalAdapterIn,
    openedAt: r.openedAt,
    ...(r.globalAdapterOut !== undefined && { globalAdapterOut: r.globalAdapterOut }),
    ...(r.reason !== undefined && { reason: r.reason }),
    ...(r.metrics !== undefined && { metrics: r.metrics }),
    ...(r.closedAt !== undefined && { closedAt: r.closedAt }),
  };
}
