// The coordinator's two stores of record, written together: the signed round log (the truth) and
// the lowdb index (participants and round summaries, a view rebuilt from the log at every start).
// The ledger also keeps the log as a Merkle tree (shared/src/rounds/merkle.ts), one leaf per
// record appended (O(log n) hashes each), and the records, so that log-proofs.ts answers
// inclusion and consistency requests without reading the log again.

import {
  MerkleTree,
  recordLeaf,
  toHex,
  type RoundLog,
  type RoundRecord,
  type RoundRecordDraft,
} from '@fedit/shared';
import type { CoordinatorIndex, ParticipantEntry } from '../store/index-db.ts';

export class Ledger {
  readonly #records: RoundRecord[];
  readonly #tree = new MerkleTree();

  /** `records`: the log's records as read when it was opened (RoundLog.open checked them). */
  constructor(
    readonly log: RoundLog,
    readonly index: CoordinatorIndex,
    records: readonly RoundRecord[],
  ) {
    this.#records = [...records];
    for (const record of records) this.#tree.append(recordLeaf(record));
  }

  /** The log as a Merkle tree: one leaf per record, in log order. */
  get tree(): MerkleTree {
    return this.#tree;
  }

  /** The record at `seq`, if the log holds one. */
  record(seq: number): RoundRecord | undefined {
    return this.#records[seq];
  }

  /** The federation state the log's records fold into (open round, eligible participants, ...). */
  get state(): RoundLog['state'] {
    return this.log.state;
  }

  /**
   * Appends a record (the log checks it before writing) and applies it to the index. Once the
   * record is appended it holds, even if saving the index then fails: the index is rebuilt from
   * the log at start.
   */
  async append(draft: RoundRecordDraft): Promise<RoundRecord> {
    const record = await this.log.append(draft);
    // RoundLog serialises appends and fills in seq, so records arrive here in log order.
    this.#records.push(record);
    this.#tree.append(recordLeaf(record));
    this.index.apply(record);
    await this.index.save();
    return record;
  }

  participant(id: string): ParticipantEntry | undefined {
    return this.index.data.participants[id];
  }

  /** The participant enrolled with this signing key (revoked or not): the fold's key index. */
  participantBySignKey(signKey: Uint8Array): ParticipantEntry | undefined {
    const id = this.log.state.participantWithKey(toHex(signKey));
    return id === undefined ? undefined : this.participant(id);
  }

  async close(): Promise<void> {
    await this.log.close();
    await this.index.save();
  }
}
