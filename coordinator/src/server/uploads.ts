// The upload sequence, coordinator side (the participant's side is its mirror):
//
//   update:begin   { envelope }               verify the signature, admit the envelope
//                                             (shared/rounds/admission.ts), derive the upload key;
//                                             answer the upload id and the first chunk missing
//                                             (0, or where a resumed upload left off)
//   update:chunk   { uploadId, index, data, sha256 }  check the sealed chunk against the envelope
//                                             (size, transit hash), open it, keep the plaintext
//   update:commit  { uploadId }               assemble, admit the payload and its tensors, store
//                                             the update in the blob store, count it in the round
//
// Uploads belong to the open round (round.ts): when it ends, those not committed are discarded.
// Once the federation has finished, every upload request is refused with FEDERATION_FINISHED.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  FeditError,
  admitCommit,
  admitEnvelope,
  admitPayload,
  admitUpdateTensors,
  canonicalPayloadBytes,
  checkChunkAgainstEnvelope,
  coordinatorUploadKey,
  fromHex,
  openChunk,
  recordEnvelope,
  verifyEnvelope,
  type KeyPair,
  type ClientPayload,
  type ContentHash,
  type Admission,
  type AnnouncedTensor,
  type Refusal,
  type Tensor,
  type UpdateBeginResult,
  type UpdateChunkResult,
  type UpdateCommitResult,
} from '@fedit/shared';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, type FederationConfig } from '@fedit/shared';
import type { BlobStore } from '@fedit/shared';
import type { Emit } from './events.ts';
import type { Ledger } from './ledger.ts';
import { startTimer, timed } from './profile.ts';
import { RefusedError, admitted } from './refusal.ts';
import type { OpenRound, Upload } from './round.ts';
import type { RoundRunner } from './round-runner.ts';
import { admitMaskedEnvelope, admitMaskedTensors, maskedRoundView } from './masked-uploads.ts';
import type { Sessions } from './sessions.ts';
import type { FeditSocket } from './transport.ts';

export interface UploadsOptions {
  config: FederationConfig;
  /** The coordinator's box keys, which (with the participant's) seal each upload. */
  box: KeyPair;
  ledger: Ledger;
  blobs: BlobStore;
  rounds: RoundRunner;
  sessions: Sessions;
  uploadsDir: string;
  emit: Emit;
}

export class Uploads {
  #commits: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: UploadsOptions) {}

  begin(socket: FeditSocket, p: ClientPayload<'update:begin'>): UpdateBeginResult {
    const { config, ledger } = this.o;
    const participant = this.o.sessions.participantOf(socket);
    this.#refuseWhenFinished();
    const { envelope, digest, id } = timed('crypto.verify', () => verifyEnvelope(p.envelope));
    this.#refuseAfterQuorum(envelope.round, participant);
    const entry = ledger.participant(participant)!;
    const open = this.o.rounds.current;
    // A secure round takes masked inputs only: its envelopes are held to the masked vector's schema.
    const secure = open && this.o.rounds.secure;
    if (secure) admitted(admitMaskedEnvelope(envelope, secure.length));
    admitted(
      admitEnvelope(
        {
          federation: config.id,
          participant: { id: participant, signKey: entry.signKey },
          round: secure ? maskedRoundView(open, secure.length) : open,
          limits: config.limits,
          envelopeLogged: (envelopeId) => ledger.state.hasEnvelope(envelopeId),
          rule: config.aggregation.rule,
        },
        envelope,
        id,
      ),
    );
    const round = open!; // admitted: a round is open
    if (secure) secure.expectMasked(participant);
    // A size the announced tensors do not make: no honest client sends it, and the update could
    // only be refused at commit (dropping the participant), so it is dropped now, unreceived.
    const size = unimpliedSize(envelope);
    if (size) this.#dropAndRefuse(round, participant, size);
    let upload = round.uploads.get(id);
    if (!upload) {
      // One upload in progress per participant and round: otherwise one participant could open
      // any number of envelopes, each up to limits.maxUploadBytes, and fill the disk. A new
      // envelope replaces the previous one (its chunks deleted) rather than being refused: an
      // honest client whose kept upload was lost or damaged trains again and signs a new
      // envelope, and must not be locked out of the round by its own half-sent one. Resuming
      // (the same envelope again) finds the upload above and keeps its chunks.
      for (const other of round.uploads.values())
        if (other.participant === participant) discard(round, other);
      const dir = join(this.o.uploadsDir, String(round.round), id.slice(7));
      mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE }); // chunks are a participant's update: owner-only
      const key = coordinatorUploadKey(
        this.o.box,
        fromHex(entry.boxKey, 'boxKey', 32),
        digest,
        envelope.chunkCount,
      );
      upload = { id, participant, envelope, key, dir, received: new Set() };
      round.uploads.set(id, upload);
    }
    let resumeFrom = 0;
    while (upload.received.has(resumeFrom)) resumeFrom++;
    return { uploadId: id as ContentHash, resumeFrom };
  }

  chunk(socket: FeditSocket, p: ClientPayload<'update:chunk'>): UpdateChunkResult {
    const { upload } = this.#find(socket, p.uploadId, '; start with update:begin');
    timed('crypto.hash', () => checkChunkAgainstEnvelope(upload.envelope, p));
    const plain = timed('crypto.open', () => {
      try {
        return openChunk(upload.key, p.index, p.data);
      } catch (err) {
        // openChunk's error names "chunk i"; the peer is told the field of its message at fault.
        if (err instanceof FeditError) throw new RefusedError(err.code, err.message, 'payload.data');
        throw err;
      }
    });
    timed('upload.disk', () =>
      writeFileSync(join(upload.dir, String(p.index)), plain, { mode: PRIVATE_FILE_MODE }),
    );
    upload.received.add(p.index);
    return { received: upload.received.size };
  }

  // Commits run one at a time: each holds a whole update in memory (payload, tensors, float32
  // copies) while its blob is written and fsynced, so letting a burst of them overlap makes the
  // coordinator's memory grow with the number of participants (10 MB each, measured by
  // `npm run bench -- federation`) instead of staying O(adapter size).
  commit(socket: FeditSocket, p: ClientPayload<'update:commit'>): Promise<UpdateCommitResult> {
    const run = this.#commits.then(() => this.#commit(socket, p.uploadId));
    this.#commits = run.catch(() => {});
    return run;
  }

  async #commit(socket: FeditSocket, uploadId: string): Promise<UpdateCommitResult> {
    const { round, upload } = this.#find(socket, uploadId, '');
    admitted(admitCommit(round, upload.participant));
    const { envelope } = upload;
    if (upload.received.size !== envelope.chunkCount)
      throw new RefusedError(
        'UPLOAD_INCOMPLETE',
        `${envelope.chunkCount - upload.received.size} of ${envelope.chunkCount} chunks are missing`,
        'payload.uploadId',
      );
    const payload = timed('upload.disk', () =>
      Buffer.concat(
        Array.from({ length: envelope.chunkCount }, (_, i) => readFileSync(join(upload.dir, String(i)))),
      ),
    );
    const stopCheck = startTimer('update.check');
    const admission = this.#admitPayload(round, upload, payload);
    stopCheck();
    if (!admission.ok) this.#refuse(round, upload, admission.refusal);
    const stopStore = startTimer('update.store'); // the synchronous part: hash and serialise
    const stored = this.o.blobs.put(admission.value);
    stopStore();
    const updateHash = await stored;
    // The quorum or the deadline may have closed the round while the blob was written: then it
    // did not count, and the participant must not be told it did.
    this.#refuseAfterQuorum(round.round, upload.participant, () => discard(round, upload));
    if (this.o.rounds.current !== round)
      throw new RefusedError(
        'ROUND_CLOSED',
        `round ${round.round} closed before this update was stored`,
        'payload.uploadId',
      );
    discard(round, upload);
    // Noted by the secure round before it counts: the collector refuses a masked input of a
    // participant outside U2, and then it is not counted either.
    this.o.rounds.secure?.addMasked(upload.participant, {
      hash: updateHash,
      envelopeDigest: upload.id,
      envelope: recordEnvelope(envelope),
    });
    round.count({
      participant: upload.participant,
      envelopeDigest: upload.id,
      exampleCount: envelope.exampleCount,
      updateHash,
      envelope: recordEnvelope(envelope),
    });
    this.o.emit({
      type: 'update-counted',
      round: round.round,
      participant: upload.participant,
      exampleCount: envelope.exampleCount,
    });
    return {};
  }

  /** The assembled payload through the admission rules; admitted: its tensors. */
  #admitPayload(round: OpenRound, upload: Upload, payload: Uint8Array): Admission<Map<string, Tensor>> {
    const tensors = admitPayload(upload.envelope, payload, `update of ${upload.participant}`);
    if (!tensors.ok) return tensors;
    const secure = this.o.rounds.secure;
    if (secure) return admitMaskedTensors(tensors.value, secure.length);
    const { tensorSchema: schema } = upload.envelope;
    const values = admitUpdateTensors(
      {
        schema,
        global: round.global,
        globalSchema: round.schema,
        maxUpdateNorm: this.o.config.limits.maxUpdateNorm,
        frozenA: this.o.rounds.settings.frozenA,
      },
      tensors.value,
    );
    return values.ok ? tensors : values;
  }

  /** After the last round no update can count: say so, rather than "no round is open". */
  #refuseWhenFinished(): void {
    const finished = this.o.rounds.finished;
    if (finished)
      throw new RefusedError(
        'FEDERATION_FINISHED',
        `the federation has ended (all ${finished.rounds} rounds were run) and takes no more updates; its final adapter is ${finished.adapterHash}`,
      );
  }

  /**
   * Once a round counted its quorum, no further update of it counts (over-selection: the others'
   * work is not waited for): say so with its own code, so the participant knows why.
   */
  #refuseAfterQuorum(round: number, participant: string, cleanUp?: () => void): void {
    if (!this.o.rounds.leftOutByQuorum(round, participant)) return;
    cleanUp?.();
    throw new RefusedError(
      'ROUND_QUORUM_REACHED',
      `round ${round} closed once its quorum of updates was counted; this update does not count, wait for the next round`,
      'envelope.round',
    );
  }

  /** The open round's upload `uploadId` of this connection's participant, or UPLOAD_UNKNOWN. */
  #find(socket: FeditSocket, uploadId: string, hint: string): { round: OpenRound; upload: Upload } {
    const participant = this.o.sessions.participantOf(socket);
    this.#refuseWhenFinished();
    const round = this.o.rounds.current;
    const upload = round?.uploads.get(uploadId);
    if (!round || !upload || upload.participant !== participant)
      throw new RefusedError(
        'UPLOAD_UNKNOWN',
        `no such upload for this participant${hint}`,
        'payload.uploadId',
      );
    return { round, upload };
  }

  /** An update refused at commit: the participant is dropped for the rest of the round. */
  #refuse(round: OpenRound, upload: Upload, refusal: Refusal): never {
    discard(round, upload);
    this.#dropAndRefuse(round, upload.participant, refusal);
  }

  #dropAndRefuse(round: OpenRound, participant: string, refusal: Refusal): never {
    this.o.emit({ type: 'update-refused', round: round.round, participant, reason: refusal.message });
    round.drop(participant, refusal.message);
    throw RefusedError.of(refusal);
  }
}

/**
 * The announced tensors (checked against the round's schema by admitEnvelope, per participant's
 * rank where ranks may differ) fix the payload's size to the byte (payload-size.ts): any other
 * payloadBytes is refused before a chunk is received, rather than once it is assembled.
 */
function unimpliedSize(envelope: {
  payloadBytes: number;
  tensorSchema: readonly AnnouncedTensor[];
}): Refusal | undefined {
  const implied = canonicalPayloadBytes(envelope.tensorSchema);
  if (envelope.payloadBytes === implied) return undefined;
  return {
    code: 'UPDATE_SIZE',
    message: `envelope.payloadBytes is ${envelope.payloadBytes}, but the announced tensors make an update of exactly ${implied} bytes`,
    field: 'envelope.payloadBytes',
  };
}

function discard(round: OpenRound, upload: Upload): void {
  round.uploads.delete(upload.id);
  rmSync(upload.dir, { recursive: true, force: true });
}
