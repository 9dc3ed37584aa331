// The held-out figures on the wire (shared/src/rounds/held-out.ts says what they mean and how the
// round record averages them): what a participant signs into its update envelope. The means reach
// participants inside the signed round-closed record that 'round:closed' carries.
import { fail, int, object, optional, refine, type Infer } from '../schema/schema.ts';
import { MAX_HELD_OUT_EXAMPLES, MAX_HELD_OUT_LOSS_MICRONATS } from './limits.ts';

/**
 * What the participant measured of the global adapter it trained from, on its held-out slice
 * (examples it never trains on): the mean token loss in micronats (nats × 10^6, rounded),
 * and how many greedy generations matched the reference exactly when its responses are short.
 * Integers, because the envelope's digest encodes no floats; rounds/held-out.ts averages them.
 */
export const heldOutFigures = refine(
  object({
    examples: int(1, MAX_HELD_OUT_EXAMPLES),
    meanLossMicronats: int(0, MAX_HELD_OUT_LOSS_MICRONATS),
    exactMatches: optional(int(0, MAX_HELD_OUT_EXAMPLES)),
  }),
  (figures, path) => {
    if (figures.exactMatches !== undefined && figures.exactMatches > figures.examples)
      fail(
        'INCONSISTENT',
        `${path}.exactMatches`,
        `${path}.exactMatches is ${figures.exactMatches}, more than the ${figures.examples} held-out examples`,
      );
  },
);
export type HeldOutFigures = Infer<typeof heldOutFigures>;
