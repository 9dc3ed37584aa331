// The coordinator's index (lowdb): what it needs to answer quickly — participants and their keys,
// per-round summaries. It is derived from the round log: a lost or damaged index is rebuilt from
// the log at every start; the log is the truth.

import { existsSync, readFileSync, renameSync } from 'node:fs';
import { JSONFilePreset } from 'lowdb/node';
import type { Low } from 'lowdb';
import type { RoundRecord } from '@fedit/shared';

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
    const participants: Record<string, ParticipantEntry> = {};
    const rounds: RoundSummary[] = [];
    for (const r of log) this.applyTo(participants, rounds, r);
    this.db.data.participants = participants;
    this.db.data.rounds = rounds;
  }

  apply(record: RoundRecord): void {
    this.applyTo(this.db.data.participants, this.db.data.rounds, record);
  }

  private applyTo(
    participants: Record<string, ParticipantEntry>,
    rounds: RoundSummary[],
    r: RoundRecord,
  ): void {
    switch (r.kind) {
      case 'enrol': {
        const body = r.body as typeof r.body & { boxKey?: string; displayName?: string };
        participants[body.participant] = {
          id: body.participant,
          signKey: body.publicKey,
          boxKey: body.boxKey ?? '',
          displayName: body.displayName ?? '',
          enrolledAt: r.time,
        };
        break;
      }
      case 'revoke': {
        const p = participants[r.body.participant];
        if (p) p.revoked = { at: r.time, reason: r.body.reason };
        break;
      }
      case 'round-open':
        rounds.push({
          round: r.round,
          status: 'open',
          selected: r.body.selection.selected,
          counted: [],
          globalAdapterIn: r.body.globalAdapter,
          openedAt: r.time,
        });
        break;
      case 'round-closed': {
        const s = rounds.find((x) => x.round === r.round);
        if (s) {
          s.status = 'closed';
          s.counted = r.body.updates.map((u) => u.participant);
          s.globalAdapterOut = r.body.globalAdapterOut;
          s.metrics = r.body.metrics;
          s.closedAt = r.time;
        }
        break;
      }
      case 'round-aborted': {
        const s = rounds.find((x) => x.round === r.round);
        if (s) {
          s.status = 'aborted';
          s.reason = r.body.reason;
          s.closedAt = r.time;
        }
        break;
      }
      case 'config':
        break;
    }
  }

  async save(): Promise<void> {
    await this.db.write();
  }
}
