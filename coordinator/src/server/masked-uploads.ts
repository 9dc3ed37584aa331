// A secure round's masked uploads as uploads.ts admits them: the envelope must announce exactly
// the masked input (secagg/masked-input.ts: one I32 tensor of the round's L words), with
// exampleCount 1 and no held-out figures, and the assembled payload must be exactly those words.
// The envelope rules of every upload (admission.ts: federation, signature, round, selection,
// replay, limits) run unchanged against a view of the round whose schema is the masked vector.

import {
  SECAGG_MASKED_TENSOR,
  SecAggError,
  isMaskedInputSchema,
  maskedWordsOf,
  type Admission,
  type AdmissionCode,
  type RoundView,
  type Tensor,
  type UpdateEnvelope,
} from '@fedit/shared';
import type { OpenRound } from './round.ts';

const refuse = (code: AdmissionCode, message: string, field: string): Admission<never> => ({
  ok: false,
  refusal: { code, message, field },
});

/**
 * A secure round's envelope: exactly the masked input's schema (one I32 tensor of L words), an
 * exampleCount of 1 (the real count travels masked in the last word), no held-out figures (a
 * participant's own figures would be one more thing the coordinator learns of it alone).
 */
export function admitMaskedEnvelope(
  envelope: Pick<UpdateEnvelope, 'tensorSchema' | 'exampleCount' | 'heldOut'>,
  length: number,
): Admission<true> {
  const field = 'envelope.tensorSchema';
  const [spec] = envelope.tensorSchema;
  if (!isMaskedInputSchema(envelope.tensorSchema) || spec.shape.join(',') !== String(length))
    return refuse(
      'UPDATE_NOT_MASKED',
      `this round is secure: it takes only a masked input, one I32 tensor ${SECAGG_MASKED_TENSOR} of ${length} words`,
      field,
    );
  if (envelope.exampleCount !== 1)
    return refuse(
      'UPDATE_NOT_MASKED',
      'a masked input says exampleCount 1: the example count travels masked in its last word',
      'envelope.exampleCount',
    );
  if (envelope.heldOut !== undefined)
    return refuse('UPDATE_NOT_MASKED', 'a masked input carries no held-out figures', 'envelope.heldOut');
  return { ok: true, value: true };
}

/** The open round as the envelope rules see it in a secure round: the masked vector is its schema. */
export function maskedRoundView(round: OpenRound, length: number): RoundView {
  return {
    round: round.round,
    selected: round.selected,
    globalAdapter: round.globalAdapter,
    schema: new Map([[SECAGG_MASKED_TENSOR, [length]]]),
    counted: round.counted,
    dropped: round.dropped,
  };
}

/** A masked input's tensors: exactly the L words (maskedWordsOf's checks); admitted as they are. */
export function admitMaskedTensors(
  tensors: Map<string, Tensor>,
  length: number,
): Admission<Map<string, Tensor>> {
  try {
    maskedWordsOf(tensors, length);
  } catch (error) {
    if (!(error instanceof SecAggError)) throw error;
    return refuse('UPDATE_NOT_MASKED', error.message, 'payload');
  }
  return { ok: true, value: tensors };
}
