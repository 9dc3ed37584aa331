// How the coordinator says no: a FeditError with a stable code and the field of the request at
// fault, which the transport sends back as the request's answer (validate.ts's toWireError).

import { FeditError, type Admission, type Refusal } from '@fedit/shared';

export class RefusedError extends FeditError {
  constructor(
    code: string,
    message: string,
    readonly field?: string,
  ) {
    super(code, message);
  }

  static of(refusal: Refusal): RefusedError {
    return new RefusedError(refusal.code, refusal.message, refusal.field);
  }
}

/** The admitted value, or the rule's refusal thrown as the answer to the request. */
export function admitted<T>(admission: Admission<T>): T {
  if (!admission.ok) throw RefusedError.of(admission.refusal);
  return admission.value;
}
