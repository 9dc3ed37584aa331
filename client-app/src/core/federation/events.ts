// What a participant tells its host (the CLI's `fedit client run`, the desktop app's worker): the
// one event vocabulary of the federation's participant side, from the round loop to the page.
import type { ExecutionProvider } from '@fedit/kernels';
import {
  CONTENT_HASH_PATTERN,
  MAX_EXAMPLE_COUNT,
  MAX_ROUND,
  MAX_SELECTED,
  schema,
  type ContentHash,
  type Infer,
} from '@fedit/shared';
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

/** A loss: any finite number. */
const finiteNumber = schema.predicate<number>(
  Number.isFinite,
  (v) => `must be a finite number, got ${JSON.stringify(v)}`,
  'TYPE',
);
/** A share such as an exact-match rate: a number from 0 to 1. */
const share = schema.predicate<number>(
  (v) => typeof v === 'number' && v >= 0 && v <= 1,
  (v) => `must be a number from 0 to 1, got ${JSON.stringify(v)}`,
  'TYPE',
);

/**
 * What happened in one round, from this participant's side: the declaration the desktop app reads
 * its saved round history with (app/history-file.ts), and the type the round loop fills in.
 */
export const roundHistoryEntry = schema.object(
  {
    round: schema.int(0, MAX_ROUND),
    selected: schema.oneOf([true, false], { kind: 'TYPE', expected: 'true or false' }),
    /** Mean loss of the local steps, when this participant trained. */
    trainLoss: schema.optional(finiteNumber),
    /** The round's global adapter on this participant's held-out slice (held-out.ts): mean token loss. */
    heldOutLoss: schema.optional(finiteNumber),
    /** And the share of exact matches, when the responses are short. */
    heldOutExactMatch: schema.optional(share),
    /**
     * The federation's example-weighted means of the same figures, from 'round:closed' (the
     * round record's heldOut), when the counted updates sent them.
     */
    federationHeldOutLoss: schema.optional(finiteNumber),
    federationHeldOutExactMatch: schema.optional(share),
    /** Training examples the update was weighted by. */
    examples: schema.optional(schema.int(0, MAX_EXAMPLE_COUNT)),
    /** True once the coordinator acknowledged the commit. */
    uploaded: schema.oneOf([true, false], { kind: 'TYPE', expected: 'true or false' }),
    /** How the round ended, from 'round:closed' (absent if the participant stopped before). */
    outcome: schema.optional(schema.oneOf(['aggregated', 'aborted'])),
    /** The global adapter after the round, and how many updates went into it. */
    adapterHash: schema.optional(schema.pattern(CONTENT_HASH_PATTERN, 'a content hash (sha256:<64 hex>)')),
    updates: schema.optional(schema.int(0, MAX_SELECTED)),
    /** With differential privacy: epsilon spent after the round, from its signed record (decimal). */
    epsilon: schema.optional(
      schema.predicate<string>(
        (v) => typeof v === 'string' && v.length <= 32 && Number.isFinite(Number(v)),
        (v) => `must be a decimal string, got ${JSON.stringify(v)}`,
        'TYPE',
      ),
    ),
    /** Why this participant's update did not count, when it did not. */
    error: schema.optional(
      schema.predicate<string>(
        (v) => typeof v === 'string',
        (v) => `must be text, got ${JSON.stringify(v)}`,
        'TYPE',
      ),
    ),
  },
  // A field another fedit version wrote is dropped: the round is kept.
  { others: 'drop' },
);
export type RoundHistoryEntry = Infer<typeof roundHistoryEntry>;

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

/** The adapter a federation ended with, as this computer keeps it. */
export interface FinalAdapter {
  hash: ContentHash;
  /** Its safetensors file in the fedit home's adapter cache. */
  path: string;
  /** Rounds the federation ran. */
  rounds: number;
}
