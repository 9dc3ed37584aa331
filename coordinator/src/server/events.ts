// What a running coordinator tells its operator (the CLI prints these; tests wait on them).

import type { DroppedParticipant } from '@fedit/shared';

export type CoordinatorEvent =
  | { type: 'listening'; url: string }
  | { type: 'enrolled'; participant: string; displayName: string }
  | { type: 'renamed'; participant: string; displayName: string }
  | { type: 'connected' | 'disconnected'; participant: string }
  /** A participant said it can train now (ready) or cannot; or its connection closed (not ready). */
  | { type: 'readiness'; participant: string; ready: boolean; reason?: string }
  /** `ready`: the candidates the round drew from; it closes once `quorum` updates are counted. */
  | { type: 'round-open'; round: number; selected: string[]; ready: string[]; quorum: number }
  | { type: 'update-counted'; round: number; participant: string; exampleCount: number }
  | { type: 'update-refused'; round: number; participant: string; reason: string }
  | { type: 'round-closed'; round: number; adapter: string; updates: number; dropped: DroppedParticipant[] }
  /** An aborted round does not count toward the federation's rounds; another is opened. */
  | { type: 'round-aborted'; round: number; reason: string }
  /** A secure round's message of `participant` was accepted (its keys, its shares, its reveal). */
  | {
      type: 'secagg-received';
      round: number;
      participant: string;
      phase: 'advertise' | 'shares' | 'consistency' | 'reveal';
    }
  /**
   * A secure round's phase ended (secure-round.ts): `done` with the participants it holds (U1, U2,
   * U3, or the revealers) after `seconds`, or `abort` (fewer than the threshold remained).
   */
  | {
      type: 'secagg-phase';
      round: number;
      phase: 'advertise' | 'shares' | 'masked' | 'consistency' | 'reveal' | 'over';
      outcome: 'done' | 'abort';
      participants: number;
      seconds?: number;
    }
  /**
   * `aborts` rounds in a row aborted: no round opens until a participant newly says it is ready
   * (so that rounds are not opened and aborted forever among the same unresponsive participants).
   */
  | { type: 'paused'; aborts: number }
  /**
   * Every round was run; the coordinator now serves the final adapter read-only until stopped.
   * `earlier`: the federation had finished before this coordinator started.
   */
  | { type: 'finished'; rounds: number; adapter: string; earlier: boolean }
  | { type: 'recovered'; abortedRound: number }
  /** A participant revoked while the coordinator runs (`fedit coordinator revoke`). */
  | { type: 'revoked'; participant: string; reason: string }
  /** Paths of the folder that others could read, made owner-only at start (permissions.ts). */
  | { type: 'permissions-tightened'; paths: string[] };

export type Emit = (event: CoordinatorEvent) => void;

/** The display name a participant enrolled or renamed itself to, from the round log (undefined: none). */
export type ParticipantNames = (participant: string) => string | undefined;
