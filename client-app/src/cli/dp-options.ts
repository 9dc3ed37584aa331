// Client-level differential privacy for `fedit coordinator init` (--dp-*), and `fedit privacy`,
// which says which noise multiplier a target epsilon needs. The config's own parser checks the
// values (federation/dp-config.ts); these options only put them in place.
//
// With --dp-target-epsilon E instead of --dp-noise-multiplier, sigma is calibrated with the
// accountant (privacy/calibrate.ts) so that the configured rounds at the expected sampling rate
// spend at most E at delta: the rate is --dp-sample-rate when given, else min(1, fraction x
// over-selection), what a round samples when every eligible participant is ready (fewer ready
// participants, or a minimum above that share, sample more, and the budget then stops sooner).

import type { Command } from 'commander';
import { DEFAULT_OVER_SELECTION, DP_RULE, FeditError, epsilonFor, noiseMultiplierFor } from '@fedit/shared';
import { number, positive } from './options.ts';

type Patch = { [key: string]: unknown };
const isSection = (v: unknown): v is Patch => typeof v === 'object' && v !== null && !Array.isArray(v);

/** noiseMultiplierFor, its refusal worded as a CLI error. */
function calibrate(input: Parameters<typeof noiseMultiplierFor>[0]): number {
  try {
    return noiseMultiplierFor(input);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    throw new FeditError('CLI_OPTION', `cannot calibrate the noise: ${err.message}`);
  }
}

/** The init options of the differentialPrivacy section. */
export function addDpOptions(command: Command): Command {
  return command
    .option(
      '--dp-clip <C>',
      'differential privacy: clip every update to this L2 norm (turns DP on)',
      positive('--dp-clip'),
    )
    .option(
      '--dp-noise-multiplier <sigma>',
      'DP: the noise on the sum has standard deviation sigma x C',
      positive('--dp-noise-multiplier'),
    )
    .option(
      '--dp-delta <delta>',
      'DP: epsilon is reported at this delta (below 1/participants)',
      number('--dp-delta', { above: 0, below: 1 }),
    )
    .option(
      '--dp-epsilon-budget <eps>',
      'DP: the federation finishes once one more round would spend more than this epsilon',
      positive('--dp-epsilon-budget'),
    )
    .option(
      '--dp-target-epsilon <eps>',
      'DP: compute sigma so that the configured rounds spend at most this epsilon (printed); instead of --dp-noise-multiplier',
      positive('--dp-target-epsilon'),
    )
    .option(
      '--dp-sample-rate <q>',
      'DP with --dp-target-epsilon: the sampling rate selected/eligible a round is expected to have (default: fraction x over-selection, at most 1)',
      number('--dp-sample-rate', { above: 0, min: 0, what: 'a number in (0, 1]' }),
    );
}

/** The differentialPrivacy section the options give (`pick` as settingsFromOptions'). */
export function dpFromOptions(pick: (key: string) => unknown): Patch {
  return {
    clipNorm: pick('dpClip'),
    noiseMultiplier: pick('dpNoiseMultiplier'),
    delta: pick('dpDelta'),
    epsilonBudget: pick('dpEpsilonBudget'),
  };
}

/** The config fields the options set, for errors that name the option typed. */
export const DP_OPTION_OF_FIELD: Record<string, string> = {
  differentialPrivacy: '--dp-clip',
  'differentialPrivacy.clipNorm': '--dp-clip',
  'differentialPrivacy.noiseMultiplier': '--dp-noise-multiplier (or --dp-target-epsilon)',
  'differentialPrivacy.delta': '--dp-delta',
  'differentialPrivacy.epsilonBudget': '--dp-epsilon-budget',
};

/** The sampling rate --dp-target-epsilon calibrates for (header). */
function expectedRate(settings: Patch, o: Patch): number {
  if (typeof o.dpSampleRate === 'number') {
    if (o.dpSampleRate > 1)
      throw new FeditError('CLI_OPTION', `--dp-sample-rate must be in (0, 1], got ${o.dpSampleRate}`);
    return o.dpSampleRate;
  }
  const per = isSection(settings.participantsPerRound) ? settings.participantsPerRound : {};
  const fraction = typeof per.fraction === 'number' ? per.fraction : 1;
  const over = typeof per.overSelection === 'number' ? per.overSelection : DEFAULT_OVER_SELECTION;
  return Math.min(1, fraction * over);
}

/**
 * The DP defaults and the calibration, on the merged settings before they are checked: the rule
 * is fedavg-uniform unless one was typed or given in the file (the config refuses any other with
 * the reason), SCAFFOLD is not turned on by default, and --dp-target-epsilon sets sigma. Returns
 * the line to print about the calibration, if any.
 */
export function applyDpSettings(settings: Patch, o: Patch, ruleChosen: boolean): string | undefined {
  const dp = settings.differentialPrivacy;
  if (!isSection(dp)) {
    if (o.dpTargetEpsilon !== undefined || o.dpSampleRate !== undefined)
      throw new FeditError(
        'CLI_OPTION',
        '--dp-target-epsilon and --dp-sample-rate need --dp-clip and --dp-delta (differential privacy)',
      );
    return undefined;
  }
  const aggregation = isSection(settings.aggregation) ? settings.aggregation : {};
  if (!ruleChosen) settings.aggregation = { ...aggregation, rule: DP_RULE };
  if (typeof o.dpTargetEpsilon !== 'number') return undefined;
  if (o.dpNoiseMultiplier !== undefined)
    throw new FeditError(
      'CLI_OPTION',
      '--dp-target-epsilon computes the noise multiplier: give it or --dp-noise-multiplier, not both',
    );
  if (typeof dp.delta !== 'number')
    throw new FeditError('CLI_OPTION', '--dp-target-epsilon needs --dp-delta');
  const rounds = typeof settings.rounds === 'number' ? settings.rounds : 10;
  const sampleRate = expectedRate(settings, o);
  const sigma = calibrate({ epsilon: o.dpTargetEpsilon, delta: dp.delta, rounds, sampleRate });
  dp.noiseMultiplier = sigma;
  const spent = epsilonFor({ delta: dp.delta, rounds, sampleRate, noiseMultiplier: sigma });
  return `noise multiplier σ = ${sigma}: ${rounds} rounds sampling q = ${sampleRate} spend ε = ${spent.toPrecision(4)} at δ = ${dp.delta} (target ${o.dpTargetEpsilon})`;
}

/** `fedit privacy`: the noise multiplier for an epsilon, or the epsilon of a noise multiplier. */
export function registerPrivacyCommand(program: Command): void {
  program
    .command('privacy')
    .description(
      'client-level DP: the noise multiplier sigma that R rounds sampling at rate q need to spend at most epsilon at delta (or, with --noise-multiplier, the epsilon they spend)',
    )
    .option('--epsilon <eps>', 'the epsilon to spend at most', positive('--epsilon'))
    .option(
      '--noise-multiplier <sigma>',
      'instead of --epsilon: the epsilon this sigma spends',
      positive('--noise-multiplier'),
    )
    .requiredOption('--rounds <n>', 'rounds the federation runs', positive('--rounds', true))
    .requiredOption(
      '--sample-rate <q>',
      'participants selected / eligible in a round, in (0, 1]',
      number('--sample-rate', { above: 0, min: 0, what: 'a number in (0, 1]' }),
    )
    .requiredOption('--delta <delta>', 'delta, in (0, 1)', number('--delta', { above: 0, below: 1 }))
    .option('--json', 'print one JSON object', false)
    .action(
      (o: {
        epsilon?: number;
        noiseMultiplier?: number;
        rounds: number;
        sampleRate: number;
        delta: number;
        json: boolean;
      }) => {
        if (o.sampleRate > 1)
          throw new FeditError('CLI_OPTION', `--sample-rate must be in (0, 1], got ${o.sampleRate}`);
        if ((o.epsilon === undefined) === (o.noiseMultiplier === undefined))
          throw new FeditError(
            'CLI_OPTION',
            'give --epsilon (to compute sigma) or --noise-multiplier (to compute epsilon)',
          );
        const { rounds, sampleRate, delta } = o;
        const sigma = o.noiseMultiplier ?? calibrate({ epsilon: o.epsilon!, delta, rounds, sampleRate });
        const epsilon = epsilonFor({ delta, rounds, sampleRate, noiseMultiplier: sigma });
        if (o.json) {
          process.stdout.write(
            JSON.stringify({ noiseMultiplier: sigma, epsilon, delta, rounds, sampleRate }) + '\n',
          );
          return;
        }
        process.stdout.write(
          `noise multiplier σ = ${sigma}: ${rounds} rounds sampling q = ${sampleRate} spend ε = ${epsilon.toPrecision(4)} at δ = ${delta}\n`,
        );
      },
    );
}
