// One open round's state: who was selected, which updates are counted, who was dropped, and the
// uploads in progress. It ends as soon as its quorum of updates is counted (over-selection: the
// others' work is not waited for), when every selected participant is counted or dropped, or when
// the round runner ends it (deadline, shutdown); nothing of it outlives the round.

import {
  tensorToF32,
  type CountedUpdate,
  type DroppedParticipant,
  type RoundOpenBody,
  type RoundView,
  type SignedEnvelope,
  type Tensor,
  type UploadKey,
} from '@fedit/shared';

/** An update being received: its verified envelope, the key its chunks open with, what arrived. */
export interface Upload {
  id: string;
  participant: string;
  envelope: SignedEnvelope;
  key: UploadKey;
  /** Where its opened chunks are kept until commit (one file per chunk index). */
  dir: string;
  received: Set<number>;
}

export class OpenRound implements RoundView {
  readonly selected: ReadonlySet<string>;
  /** The round closes once this many updates are counted (the record's quorum). */
  readonly quorum: number;
  readonly counted = new Map<string, CountedUpdate>();
  readonly dropped: DroppedParticipant[] = [];
  /** Uploads in progress, by upload id (the envelope id); at most one per participant. */
  readonly uploads = new Map<string, Upload>();
  /** The global adapter's tensor shapes, by name: every update must have exactly these. */
  readonly schema: Map<string, number[]>;
  /** The global adapter's values, for the norm bound. */
  readonly global: Map<string, Float32Array>;
  /** Resolves when the round ends (see end()). */
  readonly ended: Promise<void>;
  #end!: () => void;

  constructor(
    readonly round: number,
    readonly body: RoundOpenBody,
    globalTensors: ReadonlyMap<string, Tensor>,
  ) {
    this.selected = new Set(body.selection.selected);
    this.quorum = body.quorum ?? this.selected.size;
    this.schema = new Map([...globalTensors].map(([n, t]) => [n, t.shape]));
    this.global = new Map([...globalTensors].map(([n, t]) => [n, tensorToF32(t)]));
    this.ended = new Promise<void>((resolve) => (this.#end = resolve));
  }

  /** Its quorum of updates is counted: no further update counts. */
  get quorumReached(): boolean {
    return this.counted.size >= this.quorum;
  }

  get globalAdapter(): string {
    return this.body.globalAdapter;
  }

  /** Ends the round now (its deadline passed, or the coordinator is stopping). */
  end(): void {
    this.#end();
  }

  count(update: CountedUpdate): void {
    this.counted.set(update.participant, update);
    this.#settle();
  }

  drop(participant: string, reason: string): void {
    this.dropped.push({ participant, reason });
    this.#settle();
  }

  /** At the deadline: everyone selected who is neither counted nor dropped is dropped, with why. */
  dropMissing(reason: (participant: string) => string): void {
    for (const p of this.selected)
      if (!this.#accountedFor(p)) this.dropped.push({ participant: p, reason: reason(p) });
  }

  #accountedFor(participant: string): boolean {
    return this.counted.has(participant) || this.dropped.some((d) => d.participant === participant);
  }

  // The round ends early once its quorum is counted, or every selected participant is counted or
  // dropped. Deferred a tick so the last participant's acknowledgement goes out before the round
  // starts closing.
  #settle(): void {
    if (this.quorumReached || [...this.selected].every((p) => this.#accountedFor(p))) setImmediate(this.#end);
  }
}
