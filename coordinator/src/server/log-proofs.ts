// log:head, log:inclusion, log:consistency (shared/src/protocol/log-proofs.ts): an authenticated
// participant fetches the coordinator's signed tree head, a record with its inclusion proof, and
// the consistency proof between two heads, all from the tree the ledger keeps (ledger.ts). Heads
// are signed on demand for the size asked and kept per size, so a head of a given size is signed
// once per run and every participant asking for it gets the same one.

import {
  roundRecordLine,
  rootString,
  signTreeHead,
  recordTime,
  type ClientPayload,
  type SignedTreeHead,
} from '@fedit/shared';
import type { LogConsistencyResult, LogInclusionResult } from '@fedit/shared';
import type { Ledger } from './ledger.ts';
import { RefusedError } from './refusal.ts';

const MAX_CACHED_HEADS = 4096;

export interface LogProofsOptions {
  federation: string;
  ledger: Ledger;
  /** The coordinator's tweetnacl Ed25519 secret key (64 bytes). */
  secretKey: Uint8Array;
  now?: () => Date;
}

export class LogProofs {
  readonly #heads = new Map<number, SignedTreeHead>();
  readonly #now: () => Date;

  constructor(private readonly o: LogProofsOptions) {
    this.#now = o.now ?? (() => new Date());
  }

  /** The signed head of the first `size` records (default: all of them). */
  head(size = this.o.ledger.tree.size): SignedTreeHead {
    const { tree } = this.o.ledger;
    if (size > tree.size)
      throw new RefusedError(
        'LOG_SIZE',
        `the log holds ${tree.size} records; there is no head of size ${size}`,
        'size',
      );
    let head = this.#heads.get(size);
    if (!head) {
      head = signTreeHead(
        {
          federation: this.o.federation,
          size,
          root: rootString(tree.root(size)),
          time: recordTime(this.#now()),
        },
        this.o.secretKey,
      );
      // Bounded: the oldest sizes go first (a head asked again is signed again, with a later time).
      if (this.#heads.size >= MAX_CACHED_HEADS) this.#heads.delete(this.#heads.keys().next().value!);
      this.#heads.set(size, head);
    }
    return head;
  }

  inclusion(p: ClientPayload<'log:inclusion'>): LogInclusionResult {
    const size = p.size ?? this.o.ledger.tree.size;
    const head = this.head(size);
    if ((p.seq === undefined) === (p.round === undefined))
      throw new RefusedError(
        'LOG_SEQ',
        'log:inclusion needs either seq (a record) or round (its round-closed record), not both',
        'seq',
      );
    const seq = p.seq ?? this.#closedRecord(p.round!, size);
    if (seq === undefined)
      throw new RefusedError(
        'LOG_SEQ',
        `round ${p.round} has no round-closed record among the first ${size} records`,
        'round',
      );
    if (seq >= size)
      throw new RefusedError(
        'LOG_SEQ',
        `log:inclusion.seq ${seq} is not a record of a head of size ${size}`,
        'seq',
      );
    const record = this.o.ledger.record(seq)!;
    return {
      record: roundRecordLine(record).slice(0, -1),
      proof: this.o.ledger.tree.inclusionProof(seq, size),
      head,
    };
  }

  /** The seq of round `round`'s round-closed record below `size`, searched from the end (recent rounds are asked for). */
  #closedRecord(round: number, size: number): number | undefined {
    for (let seq = size - 1; seq >= 0; seq--) {
      const record = this.o.ledger.record(seq)!;
      if (record.kind === 'round-closed' && record.round === round) return seq;
      if (record.round < round) return undefined; // records' round never decreases
    }
    return undefined;
  }

  consistency(p: ClientPayload<'log:consistency'>): LogConsistencyResult {
    const to = p.to ?? this.o.ledger.tree.size;
    if (p.from > to)
      throw new RefusedError(
        'LOG_SIZE',
        `log:consistency.from ${p.from} is beyond log:consistency.to ${to}`,
        'from',
      );
    const toHead = this.head(to);
    return { proof: this.o.ledger.tree.consistencyProof(p.from, to), from: this.head(p.from), to: toHead };
  }
}
