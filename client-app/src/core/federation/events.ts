// What a participant tells its host (the CLI's `fedit client run`, the desktop app's worker): the
// one event vocabulary of the federation's participant side, from the round loop to the page.
import type { ExecutionProvider } from '@fedit/kernels';
import type { DatasetReport } from '../data/index.ts';
import type { ConnectionState } from './connection-types.ts';
import type { FederationSettings } from './settings.ts';

export type ParticipantStatus =
  'connecting' | 'waiting' | 'downloading' | 'training' | 'uploading' | 'done-round' | 'stopped' | 'error';

export interface StatusEvent {
  status: ParticipantStatus;
  /** The round the status is about, when it is about one. */
  round?: number;
  /** A sentence for people. */
  message?: string;
}

export interface ProgressEvent {
  round: number;
  phase: 'download' | 'training' | 'upload';
  /** Chunks or steps done so far, and in all. */
  done: number;
  total: number;
  /** Training only. */
  loss?: number;
  tokensPerSecond?: number;
  etaSeconds?: number;
}

/** What happened in one round, from this participant's side. */
export interface RoundHistoryEntry {
  round: number;
  selected: boolean;
  /** Mean loss of the local steps, when this participant trained. */
  trainLoss?: number;
  /** Training examples the update was weighted by. */
  examples?: number;
  /** True once the coordinator acknowledged the commit. */
  uploaded: boolean;
  /** How the round ended, from 'round:closed' (absent if the participant stopped before). */
  outcome?: 'aggregated' | 'aborted';
  /** The global adapter after the round, and how many updates went into it. */
  adapterHash?: string;
  updates?: number;
  /** Why this participant's update did not count, when it did not. */
  error?: string;
}

export interface ParticipantEvents {
  status: [StatusEvent];
  /** The data validation report, once at start (again if the federation's template changes). */
  report: [DatasetReport];
  progress: [ProgressEvent];
  /** A round was announced ('selected': this participant is in it). */
  'round-open': [{ round: number; selected: boolean; deadline: number }];
  /** A round ended; the entry is also in `history`. */
  round: [RoundHistoryEntry];
  connection: [ConnectionState];
  /** Something went wrong that the participant works around (it keeps running). */
  warning: [message: string];
  /** The federation's settings changed (the membership file was updated). */
  settings: [FederationSettings];
  /** Where local training runs: the provider the trainer started (a GPU that fails falls back to the CPU). */
  device: [ExecutionProvider];
}
