// The rules one counted update must pass, in one place: what the verifier holds each update of a
// round-closed record to. They mirror the coordinator's admission of an upload (envelope, then
// payload), so that what the coordinator admitted is what an auditor re-checks.
//
//   recorded  (from the log alone) the recorded envelope names the participant's enrolled key,
//             the federation, the round, the global adapter the round trained from and the example
//             count the record counts; its version is 1
//   stored    (with the blob store) the envelope is the participant's signature over exactly the
//             stored tensors (envelope-record.ts); the tensors have the global adapter's names and
//             shapes and finite values

import { FeditError } from '../errors.ts';
import {
  tensorValues,
  validateUpdate,
  type AdapterSchema,
  type TensorValues,
} from '../aggregation/schema.ts';
import type { Tensor } from '../tensors/tensor.ts';
import { canonicalJson } from './canonical.ts';
import { checkRecordedEnvelope } from './envelope-record.ts';
import type { ReportProblem } from './problems.ts';
import type { CountedUpdate } from './record.ts';

/** What the record says about an update, which its recorded envelope must say too. */
export interface RecordedUpdateContext {
  federation: string | undefined;
  round: number;
  globalAdapterIn: string;
  /** The participant's enrolled signing key. */
  publicKey: string;
}

/** The recorded envelope of `update` says what the record says (the signature is checked with the blob). */
export function checkRecordedUpdate(
  update: CountedUpdate,
  expected: RecordedUpdateContext,
  problem: ReportProblem,
): void {
  const e = update.envelope;
  const differences: string[] = [];
  if (e.participant !== expected.publicKey)
    differences.push(`it is signed by key ${e.participant}, not the enrolled key ${expected.publicKey}`);
  if (e.federation !== expected.federation)
    differences.push(`it is for federation ${JSON.stringify(e.federation)}`);
  if (e.round !== expected.round) differences.push(`it is for round ${e.round}`);
  if (e.globalAdapterHash !== expected.globalAdapterIn)
    differences.push(
      `it was trained from ${e.globalAdapterHash}, not the round's ${expected.globalAdapterIn}`,
    );
  if (e.exampleCount !== update.exampleCount)
    differences.push(`it claims ${e.exampleCount} examples, the record counts ${update.exampleCount}`);
  if (e.version !== 1) differences.push(`its version is ${e.version}, not 1`);
  for (const d of differences) problem('ENVELOPE', `the envelope of ${update.participant}: ${d}`);
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

/**
 * The stored update's values when it fits the global adapter `schema` (names, shapes, finite
 * values); otherwise undefined, and an UPDATE_INVALID problem says why.
 */
export function checkStoredUpdate(
  update: CountedUpdate,
  tensors: ReadonlyMap<string, Tensor>,
  schema: AdapterSchema,
  problem: ReportProblem,
): TensorValues | undefined {
  const mismatch = [...schema].find(([name, shape]) => {
    const t = tensors.get(name);
    return t !== undefined && canonicalJson(t.shape) !== canonicalJson(shape);
  });
  if (mismatch) {
    const [name, shape] = mismatch;
    problem(
      'UPDATE_INVALID',
      `the update of ${update.participant}: tensor ${name} has shape [${tensors.get(name)!.shape.join(', ')}], the global adapter's is [${shape.join(', ')}]`,
    );
    return undefined;
  }
  try {
    const values = tensorValues(tensors);
    validateUpdate(schema, values);
    return values;
  } catch (err) {
    if (!(err instanceof FeditError)) throw err;
    problem('UPDATE_INVALID', `the update of ${update.participant}: ${err.message}`);
    return undefined;
  }
}
