// The verifier as a fold that judges: before each record is applied to the federation state
// (state.ts), the record rules say what is wrong with it (rules-integrity.ts, rules-lifecycle.ts,
// rules-round.ts, update-rules.ts) and, with the blob store, the round is recomputed
// (recompute.ts). `check` judges the next record without changing anything and `commit` applies
// it, so RoundLog can refuse a record before writing it; verifyRoundLog adds records one by one.

import { FeditError } from '../errors.ts';
import { canonicalJson } from './canonical.ts';
import type { LogLine } from './log-file.ts';
import type {
  ReportProblem,
  RoundReport,
  VerificationProblem,
  VerificationReport,
  VerifyOptions,
} from './problems.ts';
import { ROUND_RECORD_KINDS, type RoundRecord, type RoundRecordKind } from './record.ts';
import { parseRoundRecord } from './record-shape.ts';
import { checkConfigBlob, recomputeRound, type Recomputation } from './recompute.ts';
import { checkIntegrity } from './rules-integrity.ts';
import { checkLifecycle } from './rules-lifecycle.ts';
import { checkPrivacyRules } from './privacy.ts';
import { FederationState } from './state.ts';

interface Examination {
  record?: RoundRecord;
  problems: VerificationProblem[];
  recomputation?: Recomputation;
}

/** What the verifier adds to a round's state: its problems and what recomputing it showed. */
interface RoundVerdict {
  problems: VerificationProblem[];
  recomputation?: Recomputation;
}

export class RoundLogChecker {
  readonly #options: VerifyOptions;
  readonly #state: FederationState;
  #position = 0;
  /** The previous line was not a record: the next one's seq and prevHash cannot be checked. */
  #afterDamage = false;
  readonly #verdicts = new Map<number, RoundVerdict>();
  readonly #problems: VerificationProblem[] = [];

  constructor(options: VerifyOptions = {}) {
    this.#options = options;
    this.#state = new FederationState(options.federation);
  }

  /** The fold of the records taken in so far. */
  get state(): FederationState {
    return this.#state;
  }

  /** What is wrong with `record` as the next record; `commit` takes it in (problems or not). */
  check(record: unknown): { problems: VerificationProblem[]; commit: () => void } {
    const exam = this.#examine(record);
    return { problems: exam.problems, commit: () => this.#commit(record, exam) };
  }

  /** Checks `record` as the next record, takes it in, and returns its problems. */
  add(record: unknown): VerificationProblem[] {
    const { problems, commit } = this.check(record);
    commit();
    return problems;
  }

  /**
   * Takes in one line of the log file: its record, plus a LINE_DAMAGED problem when the line is
   * not a record at all (the record and round are then read from its text where possible) or is
   * a record not written in canonical form (the hash covers the canonical form, so such an edit
   * would otherwise go unseen).
   */
  addLine(line: LogLine): VerificationProblem[] {
    if (line.value === undefined) return [this.#addDamaged(line)];
    const problems = this.add(line.value);
    if (line.damage !== undefined && problems.every((p) => p.code !== 'RECORD_SHAPE')) {
      const record = line.value as { seq: number; kind: RoundRecordKind; round: number };
      const isRound = record.kind.startsWith('round-');
      const problem: VerificationProblem = {
        seq: record.seq,
        kind: record.kind,
        code: 'LINE_DAMAGED',
        message: `line ${line.line} of the log, record ${record.seq} (${record.kind}${isRound ? `, round ${record.round}` : ''}): ${line.damage}; it was edited after it was written`,
      };
      if (isRound) problem.round = record.round;
      this.#record(problem);
      problems.push(problem);
    }
    return problems;
  }

  report(): VerificationReport {
    const numbers = new Set([...this.#state.rounds().keys(), ...this.#verdicts.keys()]);
    const rounds = [...numbers].sort((a, b) => a - b).map((n) => this.#roundReport(n));
    const report: VerificationReport = {
      ok: this.#problems.length === 0,
      records: this.#position,
      head: this.#state.head,
      rounds,
      problems: [...this.#problems],
      selectionSeeds: this.#state.seedChain ? 'committed' : 'unconstrained',
    };
    if (this.#problems.length > 0) report.firstFailure = this.#problems[0];
    return report;
  }

  #roundReport(round: number): RoundReport {
    const state = this.#state.rounds().get(round);
    const verdict = this.#verdicts.get(round);
    const problems = [...(verdict?.problems ?? [])];
    const closed = state?.status === 'closed';
    return {
      round,
      status: state?.status ?? 'open',
      rule: state?.rule ?? '',
      selected: [...(state?.selected ?? [])],
      participants: [...(state?.counted ?? [])],
      aggregation: (closed && verdict?.recomputation?.aggregation) || 'unchecked',
      ...(closed && verdict?.recomputation?.noise && { noise: verdict.recomputation.noise }),
      missingBlobs: closed ? [...(verdict?.recomputation?.missingBlobs ?? [])] : [],
      ok: problems.length === 0,
      problems,
    };
  }

  #examine(value: unknown): Examination {
    const exam: Examination = { problems: [] };
    const raw = (value ?? {}) as { seq?: unknown };
    const seq = Number.isSafeInteger(raw.seq) ? (raw.seq as number) : this.#position;
    let record: RoundRecord;
    try {
      record = parseRoundRecord(value, `record ${seq}`);
      // Also proves the record has a canonical encoding (no floats, no undefined, ...).
      canonicalJson(record);
    } catch (err) {
      if (!(err instanceof FeditError)) throw err;
      exam.problems.push({ seq, code: 'RECORD_SHAPE', message: err.message });
      return exam;
    }
    exam.record = record;
    const isRound = record.kind.startsWith('round-');
    const where = `record ${seq} (${record.kind}${isRound ? `, round ${record.round}` : ''})`;
    const problem: ReportProblem = (code, message) => {
      const p: VerificationProblem = { seq, kind: record.kind, code, message: `${where}: ${message}` };
      if (isRound) p.round = record.round;
      exam.problems.push(p);
    };

    const state = this.#state;
    const { coordinatorPublicKey, blobs } = this.#options;
    checkIntegrity(
      record,
      state,
      { position: this.#position, afterDamage: this.#afterDamage, coordinatorPublicKey },
      problem,
    );
    checkLifecycle(record, state, this.#position, problem, this.#options.requireConfig === true);
    checkPrivacyRules(record, state, problem);
    if (blobs && record.kind === 'config' && record.body.globalAdapter !== undefined)
      checkConfigBlob(record.body.globalAdapter, blobs, problem);
    if (blobs && record.kind === 'round-closed')
      exam.recomputation = recomputeRound(
        record.round,
        record.body,
        state,
        blobs,
        problem,
        this.#options.noiseSeeds,
      );
    return exam;
  }

  #commit(value: unknown, exam: Examination): void {
    const position = this.#position++;
    const record = exam.record;
    if (!record) {
      this.#problems.push(...exam.problems);
      // Keep going past an unreadable record so later records are still judged on their own.
      const raw = (value ?? {}) as { seq?: unknown; hash?: unknown };
      const seq = Number.isSafeInteger(raw.seq) ? (raw.seq as number) : position;
      this.#state.skip(seq + 1, typeof raw.hash === 'string' ? raw.hash : undefined);
      return;
    }
    this.#afterDamage = false;
    this.#state.apply(record);
    if (record.kind === 'round-open') this.#verdicts.delete(record.round); // a round starts afresh
    if (exam.recomputation) this.#verdict(record.round).recomputation = exam.recomputation;
    for (const problem of exam.problems) this.#record(problem);
  }

  /** Adds a problem to the log's list and, when it is about a round, to that round's. */
  #record(problem: VerificationProblem): void {
    this.#problems.push(problem);
    if (problem.round !== undefined) this.#verdict(problem.round).problems.push(problem);
  }

  #verdict(round: number): RoundVerdict {
    let verdict = this.#verdicts.get(round);
    if (!verdict) {
      verdict = { problems: [] };
      this.#verdicts.set(round, verdict);
    }
    return verdict;
  }

  #addDamaged(line: LogLine): VerificationProblem {
    const position = this.#position++;
    const text = line.text ?? '';
    // The last match: a record's own fields follow its body in canonical (sorted) key order, and
    // a body may hold fields of the same name (a rule config's clipping "kind").
    const last = (pattern: string) => [...text.matchAll(new RegExp(pattern, 'g'))].at(-1)?.[1];
    const number = (field: string) => {
      const match = last(`"${field}":(\\d+)`);
      return match === undefined ? undefined : Number(match);
    };
    const seq = number('seq') ?? position;
    const kind = last('"kind":"([a-z-]+)"');
    const round = number('round');
    const isRound = kind?.startsWith('round-') === true && round !== undefined;
    const about = [kind, isRound ? `round ${round}` : undefined].filter(Boolean).join(', ');
    const problem: VerificationProblem = {
      seq,
      code: 'LINE_DAMAGED',
      message: `line ${line.line} of the log (record ${seq}${about ? `, ${about}` : ''} by its text): ${line.damage ?? 'is not a record'}; the log was damaged or edited`,
    };
    if ((ROUND_RECORD_KINDS as readonly (string | undefined)[]).includes(kind))
      problem.kind = kind as RoundRecordKind;
    if (isRound) problem.round = round;
    this.#record(problem);
    this.#state.skip(position + 1);
    this.#afterDamage = true;
    return problem;
  }
}
