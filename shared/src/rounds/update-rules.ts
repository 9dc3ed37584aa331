// The rules one counted update must pass, as the verifier holds each update of a round-closed
// record to them. They are the coordinator's admission rules (admission.ts, admission-payload.ts),
// applied to what the log and the blob store keep of the upload, so that what the coordinator
// admitted and what an auditor re-checks are one set of rules; each refusal becomes a problem of
// the code PROBLEM_OF gives it, in the rule's own words. Beside them stand the checks only the
// verifier can make, because only it reads an envelope apart from its upload:
//
//   standing  (from the log alone) the participant was not dropped from the round and is counted
//             once (admitCommit)
//   recorded  (from the log alone) the recorded envelope meets ENVELOPE_RULES for the round the
//             record closes: the participant's enrolled key, the federation, the round, selected,
//             the global adapter the round trained from, the federation's limits on examples and
//             bytes (when the log records its config), never counted before (a replay). The
//             verifier's own: it claims the example count the record counts; its version is 1
//   signed    (with the blob store) the envelope is the participant's signature over exactly the
//             stored tensors (envelope-record.ts); the coordinator checked the signature on the
//             wire and the payload hash at commit, the verifier must tie both to the stored blob
//   stored    (with the blob store) the stored tensors are the global adapter's names and shapes
//             (checkAnnouncedSchema, at one lower rank under a rule that takes it: the
//             envelope's schema is the stored tensors', see
//             envelope-record.ts), finite (admitTensorValues), and within the federation's norm
//             bound (checkUpdateNorm, when the log records the config)

import type { AdapterSchema, TensorValues } from '../aggregation/schema.ts';
import type { Tensor } from '../tensors/tensor.ts';
import {
  admitCommit,
  checkAnnouncedSchema,
  envelopeRefusals,
  type AdmissionCode,
  type EnvelopeTerms,
  type Refusal,
  type Standing,
} from './admission.ts';
import { admitTensorValues, checkUpdateNorm, trainedFrom } from './admission-payload.ts';
import { checkRecordedEnvelope, tensorSchemaOf } from './envelope-record.ts';
import type { ReportProblem, VerificationProblemCode } from './problems.ts';
import type { CountedUpdate } from './record.ts';

/** The verifier's problem for each admission refusal: the codes its reports have always used. */
const PROBLEM_OF: Record<AdmissionCode, VerificationProblemCode> = {
  UPDATE_PARTICIPANT: 'ENVELOPE',
  UPDATE_FEDERATION: 'ENVELOPE',
  ROUND_CLOSED: 'ENVELOPE',
  UPDATE_STALE: 'ENVELOPE',
  UPDATE_PAYLOAD: 'ENVELOPE',
  UPDATE_NOT_SELECTED: 'NOT_SELECTED',
  UPDATE_REPLAY: 'REPLAYED_ENVELOPE',
  UPDATE_DUPLICATE: 'DUPLICATE_UPDATE',
  UPDATE_DROPPED: 'DROPPED_AND_COUNTED',
  UPDATE_EXAMPLES: 'UPDATE_LIMIT',
  UPDATE_TOO_LARGE: 'UPDATE_LIMIT',
  UPDATE_SIZE: 'UPDATE_INVALID',
  UPDATE_NORM: 'UPDATE_LIMIT',
  UPDATE_SCHEMA: 'UPDATE_INVALID',
  UPDATE_FORMAT: 'UPDATE_INVALID',
  UPDATE_NOT_FINITE: 'UPDATE_INVALID',
  UPDATE_FROZEN: 'UPDATE_INVALID',
  UPDATE_RANK: 'UPDATE_INVALID',
  UPDATE_NOT_MASKED: 'UPDATE_INVALID',
};

/** Reports a broken admission rule about `subject` ("the update of p-alice") in the rule's words. */
function reportRefusal(problem: ReportProblem, subject: string, refusal: Refusal): undefined {
  problem(PROBLEM_OF[refusal.code], `${subject} breaks admission rule ${refusal.code}: ${refusal.message}`);
  return undefined;
}

/**
 * The participant's standing as the coordinator checks it at commit (admitCommit): it was not
 * dropped from the round, and `round.counted` (the updates listed before it) holds none of its.
 */
export function checkStanding(update: CountedUpdate, round: Standing, problem: ReportProblem): void {
  const standing = admitCommit(round, update.participant);
  if (!standing.ok) reportRefusal(problem, `the update of ${update.participant}`, standing.refusal);
}

/**
 * The recorded envelope of `update`, counted in the round `terms` describe, meets the admission
 * rules of its envelope and says what the record says (the signature is checked with the blob).
 */
export function checkRecordedUpdate(
  update: CountedUpdate,
  terms: EnvelopeTerms,
  problem: ReportProblem,
): void {
  const e = update.envelope;
  const subject = `the envelope of ${update.participant}`;
  for (const refusal of envelopeRefusals({ ...e, id: update.envelopeDigest }, terms))
    reportRefusal(problem, subject, refusal);
  if (e.exampleCount !== update.exampleCount)
    problem(
      'ENVELOPE',
      `${subject}: it claims ${e.exampleCount} examples, the record counts ${update.exampleCount}`,
    );
  if (e.version !== 1) problem('ENVELOPE', `${subject}: its version is ${e.version}, not 1`);
}

/** The participant signed exactly the stored tensors (`publicKey`: its enrolled key, when enrolled). */
export function checkStoredEnvelope(
  update: CountedUpdate,
  tensors: ReadonlyMap<string, Tensor>,
  publicKey: string | undefined,
  problem: ReportProblem,
): void {
  if (publicKey === undefined) return; // NOT_ENROLLED, already reported
  const refusal = checkRecordedEnvelope(update.envelope, tensors, {
    envelopeDigest: update.envelopeDigest,
    publicKeyHex: publicKey,
  });
  if (refusal !== undefined) problem('ENVELOPE', `the envelope of ${update.participant}: ${refusal}`);
}

/** What a stored update is held to: the round's global adapter and the federation's norm bound. */
export interface StoredUpdateTerms {
  /** The global adapter's tensor names and shapes. */
  schema: AdapterSchema;
  /** The global adapter's values, when its blob could be read (the norm is measured from them). */
  global: TensorValues | undefined;
  /** The federation's bound on an update's norm, when the log records the config. */
  maxUpdateNorm: number | undefined;
  /** The round's rule: whether updates of a lower LoRA rank are admitted (checkAnnouncedSchema). */
  rule?: string;
}

/**
 * The stored update's values when it meets the admission rules of its tensors (the global
 * adapter's names and shapes, finite values, the norm bound); otherwise undefined, and a problem
 * says which rule it breaks.
 */
export function checkStoredUpdate(
  update: CountedUpdate,
  tensors: ReadonlyMap<string, Tensor>,
  terms: StoredUpdateTerms,
  problem: ReportProblem,
): TensorValues | undefined {
  const subject = `the update of ${update.participant}`;
  const announced = tensorSchemaOf(tensors);
  const schema = checkAnnouncedSchema(terms.schema, announced, terms.rule);
  if (schema) return reportRefusal(problem, subject, schema);
  const values = admitTensorValues(announced, tensors);
  if (!values.ok) return reportRefusal(problem, subject, values.refusal);
  if (terms.global && terms.maxUpdateNorm !== undefined) {
    const reference = trainedFrom(terms.global, terms.schema, announced);
    const norm = checkUpdateNorm(values.value, reference, terms.maxUpdateNorm);
    if (norm) return reportRefusal(problem, subject, norm);
  }
  return values.value;
}
