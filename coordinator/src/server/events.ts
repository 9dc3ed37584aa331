// What a running coordinator tells its operator (the CLI prints these; tests wait on them).

import type { DroppedParticipant } from '@fedit/shared';

export type CoordinatorEvent =
  | { type: 'listening'; url: string }
  | { type: 'enrolled'; participant: string; displayName: string }
  | { type: 'connected' | 'disconnected'; participant: string }
  | { type: 'round-open'; round: number; selected: string[] }
  | { type: 'update-counted'; round: number; participant: string; exampleCount: number }
  | { type: 'update-refused'; round: number; participant: string; reason: string }
  | { type: 'round-closed'; round: number; adapter: string; updates: number; dropped: DroppedParticipant[] }
  | { type: 'round-aborted'; round: number; reason: string }
  /**
   * Every round was run; the coordinator now serves the final adapter read-only until stopped.
   * `earlier`: the federation had finished before this coordinator started.
   */
  | { type: 'finished'; rounds: number; adapter: string; earlier: boolean }
  | { type: 'recovered'; abortedRound: number };

export type Emit = (event: CoordinatorEvent) => void;
