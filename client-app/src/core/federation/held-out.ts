// What the federation learned, seen from one participant: a seeded slice of its own data that it
// never trains on, on which it measures every global adapter it trains from, and the final one.
//
//   slice     min(10% of its conversations, 32), drawn by data/split.ts from the data and the seed
//             "fedit-held-out:<federation id>" (the same slice on every start; copies of a
//             conversation stay on one side); none when it has a single usable example
//   measured  the mean token loss of the global adapter on the slice (core/evaluate.ts's
//             evaluateAdapterRows, what `fedit eval` runs), and, when every reference response is
//             short (at most 16 tokens), how many greedy answers (core/greedy.ts's greedyAnswers,
//             which the demo's task accuracy uses too) equal the reference after trimming
//   kept      per round in <home>/held-out/<id>.json, written atomically
//             (store.ts writePrivateFile), and signed into the round's update envelope as integers
//             (shared heldOutFigures: the loss in micronats), which the round record averages
//
// Only the three integers leave the machine, never an example.

import { join } from 'node:path';
import { IGNORE_INDEX, type LoraConfig } from '@fedit/kernels';
import {
  MAX_HELD_OUT_EXAMPLES,
  MAX_HELD_OUT_LOSS_MICRONATS,
  tensorToF32,
  type HeldOutFigures,
  type RoundClosed,
} from '@fedit/shared';
import type { RoundHistoryEntry } from './events.ts';
import { readCachedAdapter } from './adapters.ts';
import type { HeldOutOptions } from '../data/split.ts';
import type { TrainingExample } from '../data/index.ts';
import { evaluateAdapterRows } from '../evaluate.ts';
import { greedyAnswers } from '../greedy.ts';
import type { ParticipantSession } from './session.ts';
import { federationLora } from './settings.ts';
import { keepRoundEntry, readRoundEntries, type RoundEntryKind } from './rounds-file.ts';
import { membershipPath } from './store.ts';

/** Responses of at most this many tokens are short enough to score by exact match. */
export const SHORT_RESPONSE_TOKENS = 16;

/** The split options of a participant's held-out slice in federation `federation`. */
export function heldOutSlice(federation: string): HeldOutOptions {
  return { fraction: 0.1, max: MAX_HELD_OUT_EXAMPLES, seed: `fedit-held-out:${federation}` };
}

/** One round's figures as the participant keeps them. */
export interface HeldOutRound {
  round: number;
  /** The global adapter measured: the one the round trained from. */
  adapter: string;
  examples: number;
  /** Mean token loss, nats. */
  loss: number;
  /** Exact matches, when the responses are short. */
  exactMatches?: number;
  /** exactMatches / examples. */
  exactMatch?: number;
}

/**
 * Measures global adapter `hash` (its values) on the held-out slice and keeps the figures in the
 * home as round `round`'s: the round that trains from it. Undefined without a slice.
 */
export async function measureAndKeep(
  session: Pick<
    ParticipantSession,
    'home' | 'membership' | 'model' | 'tokenizer' | 'data' | 'settings' | 'options'
  >,
  round: number,
  hash: string,
  values: ReadonlyMap<string, Float32Array>,
): Promise<HeldOutFigures | undefined> {
  const figures = await measureHeldOut(session, federationLora(session.settings), values);
  if (figures)
    await keepHeldOutRound(session.home, session.membership.federation, heldOutRound(round, hash, figures));
  return figures;
}

/**
 * The federation's final adapter (the one its round `lastRound` produced, in the adapter cache),
 * measured and kept as round lastRound + 1's, the round that would have trained from it. The round
 * number, not the count of rounds: aborted rounds are retried under new numbers, so after an abort
 * the count would name a round that ran. A failure is only told to `warn`: the adapter is kept
 * whether it can be measured or not.
 */
export async function measureFinalAdapter(
  session: ParticipantSession,
  hash: string,
  lastRound: number,
  warn: (message: string) => void,
): Promise<void> {
  try {
    const tensors = await readCachedAdapter(session.home, hash);
    if (!tensors) return;
    const values = new Map([...tensors].map(([name, tensor]) => [name, tensorToF32(tensor)]));
    await measureAndKeep(session, lastRound + 1, hash, values);
  } catch (error) {
    // The final adapter is kept already; a figure about it is not worth losing the ending over.
    warn(`could not measure the final adapter on the held-out examples: ${(error as Error).message}`);
  }
}

/** Measures a global adapter (`tensors`, LoRA `lora`) on the session's held-out slice. */
export async function measureHeldOut(
  session: Pick<ParticipantSession, 'model' | 'tokenizer' | 'data' | 'settings' | 'options'>,
  lora: LoraConfig,
  tensors: ReadonlyMap<string, Float32Array>,
): Promise<HeldOutFigures | undefined> {
  const rows = session.data.heldOut;
  if (rows.length === 0) return undefined;
  const { loss } = await evaluateAdapterRows(session.model, rows, {
    lora,
    tensors,
    cutoffLen: session.settings.training.cutoffLen,
    batchSize: 4,
    provider: session.options.provider,
    threads: session.options.threads,
  });
  if (!Number.isFinite(loss)) return undefined;
  const meanLossMicronats = Math.min(Math.round(loss * 1e6), MAX_HELD_OUT_LOSS_MICRONATS);
  const tasks = rows.map(promptAndReference);
  if (tasks.some((t) => t === undefined || t.reference.length > SHORT_RESPONSE_TOKENS))
    return { examples: rows.length, meanLossMicronats };
  const { tokenizer } = session;
  const answers = await greedyAnswers(
    session.model,
    tokenizer,
    tasks.map((t) => t!.prompt),
    {
      maxNewTokens: Math.max(...tasks.map((t) => t!.reference.length)) + 2,
      adapter: { config: lora, tensors },
      threads: session.options.threads,
    },
  );
  const reference = (ids: number[]) => tokenizer.decode(ids, { skipSpecialTokens: true }).trim();
  const exactMatches = answers.filter((answer, i) => answer.trim() === reference(tasks[i]!.reference)).length;
  return { examples: rows.length, meanLossMicronats, exactMatches };
}

/**
 * A row's prompt tokens and its reference response tokens, when the labelled tokens are one run
 * (a single reply; a template may add unlabelled tokens after it); undefined otherwise (several
 * replies, or loss on the inputs too).
 */
function promptAndReference(row: TrainingExample): { prompt: number[]; reference: number[] } | undefined {
  const labelled = (label: number) => label !== IGNORE_INDEX;
  const first = row.labels.findIndex(labelled);
  const end = row.labels.findLastIndex(labelled) + 1;
  if (first <= 0 || !row.labels.slice(first, end).every(labelled)) return undefined;
  return { prompt: row.inputIds.slice(0, first), reference: row.inputIds.slice(first, end) };
}

/** The folder of the participant's held-out figures, one file per federation. */
export const HELD_OUT_DIR = 'held-out';

/** The file of a federation's held-out figures in the participant's home. */
export function heldOutPath(home: string, federation: string): string {
  membershipPath(home, federation); // refuses what is not a federation id, as every home path does
  return join(home, HELD_OUT_DIR, `${federation}.json`);
}

const HELD_OUT_ROUNDS: RoundEntryKind<HeldOutRound> = {
  isEntry: isHeldOutRound,
  described: 'held-out figures',
};

/**
 * The figures kept so far, by ascending round ([] before the first). A file that is not what
 * keepHeldOutRound writes (it writes atomically, so only an edit makes one) is an error naming it.
 */
export async function readHeldOutHistory(home: string, federation: string): Promise<HeldOutRound[]> {
  return readRoundEntries(heldOutPath(home, federation), HELD_OUT_ROUNDS);
}

function isHeldOutRound(value: unknown): value is HeldOutRound {
  const r = value as Partial<HeldOutRound> | null;
  return (
    typeof r === 'object' &&
    r !== null &&
    Number.isSafeInteger(r.round) &&
    typeof r.adapter === 'string' &&
    Number.isSafeInteger(r.examples) &&
    Number.isFinite(r.loss)
  );
}

/** Keeps round `entry.round`'s figures (replacing any earlier ones of that round), atomically. */
export async function keepHeldOutRound(home: string, federation: string, entry: HeldOutRound): Promise<void> {
  await keepRoundEntry(heldOutPath(home, federation), HELD_OUT_ROUNDS, entry);
}

/** The figures as the participant keeps them. */
export function heldOutRound(round: number, adapter: string, figures: HeldOutFigures): HeldOutRound {
  return {
    round,
    adapter,
    examples: figures.examples,
    loss: figures.meanLossMicronats / 1e6,
    ...(figures.exactMatches !== undefined && {
      exactMatches: figures.exactMatches,
      exactMatch: figures.exactMatches / figures.examples,
    }),
  };
}

/** The federation's means from 'round:closed' as a round history entry keeps them (numbers). */
export function federationHeldOut(
  means: NonNullable<RoundClosed['heldOut']>,
): Pick<RoundHistoryEntry, 'federationHeldOutLoss' | 'federationHeldOutExactMatch'> {
  return {
    federationHeldOutLoss: Number(means.meanLoss),
    ...(means.exactMatch !== undefined && { federationHeldOutExactMatch: Number(means.exactMatch) }),
  };
}
