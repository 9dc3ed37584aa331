// `fedit coordinator init`: the options that make a federation's settings (the base model and its
// download source, rounds, LoRA, local training, selection and quorum, limits, learning rules) and
// what it prints, the operator's fingerprint included. The other `fedit coordinator` commands are
// in ./coordinator.ts; the learning options and --settings FILE are in ./init-settings.ts.

import { Option, type Command } from 'commander';
import {
  FeditError,
  LIMIT_RULES,
  aggregationRuleNames,
  fingerprint,
  formatModelRepo,
  isPinnedRevision,
  parseModelRepo,
  publicIdentity,
  type FederationConfig,
  type ModelRepo,
} from '@fedit/shared';
import type { FederationSettings } from '@fedit/coordinator';
import { robustRuleCaveat } from '../core/federation/learning-words.ts';
import { addLearningOptions, initSettings, type InitOptions } from './init-settings.ts';
import { addDpOptions } from './dp-options.ts';
import { addSecureAggregationOptions } from './secagg-options.ts';
import { addLoraOptions, positive } from './options.ts';

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** "536870912", "512MiB", "1.5 GiB" -> bytes; NaN for anything else (the caller names the option). */
function parseByteSize(raw: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(raw);
  const unit = m && SIZE_UNITS[m[2].toLowerCase()];
  return m && unit ? Number(m[1]) * unit : NaN;
}

/**
 * The coordinator's fingerprint as the operator passes it on: `fedit client join` and the app show
 * participants the fingerprint of the key their invite carries, and it must be this one.
 */
export function fingerprintLine(print: string): string {
  return `fingerprint ${print}  (participants see it when they join: give it to them another way, so they can compare)`;
}

export function registerInit(coordinator: Command): void {
  const init = coordinator
    .command('init')
    .description(
      'create a federation in an empty folder: keys, settings, the initial global adapter, the round log',
    )
    .argument('<dir>', 'the federation folder to create')
    .requiredOption('--model <dir>', 'the base model (Hugging Face folder) every participant must train on')
    .option(
      '--model-name <name>',
      "how participants see the base model named (default: the --model-repo repository, else the folder's name, never its path)",
    )
    .option(
      '--model-repo <owner/name[@revision]>',
      'the Hugging Face repository participants download the model from (`fedit model fetch`); best pinned to a commit hash',
      (raw: string) => parseModelRepo(raw, '--model-repo'),
    )
    .option('--name <name>', "the federation's name", 'fedit federation')
    .option(
      '--rounds <n>',
      'rounds to aggregate: a round aborted for too few updates does not count and is retried (after 3 aborts in a row, once a participant newly says it is ready); the round log records both',
      positive('--rounds', true),
      10,
    );
  addDpOptions(
    addSecureAggregationOptions(
      addLearningOptions(addLimitOptions(addSelectionOptions(addTrainingOptions(addLoraOptions(init))))),
    ),
  )
    .option('--json', 'print one JSON object: federation, base model, fingerprint', false)
    .action(async (dir: string, o: InitOptions, command: Command) => {
      // Everything is checked before the model is loaded or the folder touched.
      const notes: string[] = [];
      const settings = initSettings(o, command, notes) as Partial<FederationSettings>;
      const { initFederationFromModel } = await import('../operator/init-federation.ts');
      const { config, identity } = await initFederationFromModel(dir, {
        modelDir: o.model as string,
        modelName: o.modelName as string | undefined,
        modelRepo: o.modelRepo as ModelRepo | undefined,
        settings,
      });
      const operator = fingerprint(publicIdentity(identity));
      // What the chosen rule does not protect against, measured (participants read it at join too).
      const caveat = robustRuleCaveat(config);
      if (o.json) {
        const { id, name, baseModel } = config;
        process.stdout.write(
          JSON.stringify({ federation: id, name, dir, baseModel, fingerprint: operator, caveat }) + '\n',
        );
        return;
      }
      process.stdout.write(
        `created federation ${config.id} in ${dir}\n  base model ${config.baseModel.name} (${config.baseModel.identity})\n${modelSourceLines(config.baseModel)}  ${fingerprintLine(operator)}\n${caveat ? `  note: ${caveat}\n` : ''}${notes.map((n) => `  ${n}\n`).join('')}${privacySummary(config)}  next: fedit coordinator invite ${dir} --url http://HOST:PORT, then fedit coordinator start ${dir}\n`,
      );
    });
}

/** Who a round selects and when it closes: the readiness draw, over-selection, quorum, the rule. */
function addSelectionOptions(command: Command): Command {
  return command
    .option(
      '--fraction <f>',
      'share of the ready participants (model and data loaded, able to train now) a round targets',
      positive('--fraction'),
      1,
    )
    .option(
      '--min-participants <n>',
      'participants per round at least (rounds wait for this many ready; a bare `client join` is never ready)',
      positive('--min-participants', true),
      2,
    )
    .option(
      '--over-selection <x>',
      'select this many times the target (Bonawitz et al. 2019), so that a round closes at its quorum without waiting for who is away',
      positive('--over-selection'),
    )
    .option(
      '--quorum <n>',
      'updates at which a round closes (default: the target); others still uploading are refused',
      positive('--quorum', true),
    )
    .option(
      '--min-updates <n>',
      'fewest updates a round needs, else it is aborted',
      positive('--min-updates', true),
      2,
    )
    .option('--deadline <seconds>', 'round deadline', positive('--deadline'), 3600)
    .option(
      '--aggregation-rule <name>',
      `how a round combines updates: ${aggregationRuleNames().join(', ')} (fedit: the example-weighted mean of every LoRA tensor)`,
      'fedit',
    );
}

/** The federation's differential privacy as init prints it (nothing without). */
function privacySummary(config: FederationConfig): string {
  const dp = config.differentialPrivacy;
  if (!dp) return '';
  const budget = dp.epsilonBudget === undefined ? 'no epsilon budget' : `finishes at ε = ${dp.epsilonBudget}`;
  return `  differential privacy: updates clipped to ${dp.clipNorm}, noise σ = ${dp.noiseMultiplier} x C, δ = ${dp.delta}, ${budget}\n`;
}

/** Where participants download the base model, as `init` prints it (nothing if it was not said). */
function modelSourceLines(base: { identity: string; repo?: string; revision?: string }): string {
  if (base.repo === undefined) return '';
  const source = formatModelRepo({ repo: base.repo, revision: base.revision });
  const moving = isPinnedRevision(base.revision)
    ? ''
    : `  note: ${base.revision ?? 'main'} is not a commit hash; if the repository changes, downloads stop matching the identity (pin a commit: --model-repo ${base.repo}@<commit>)\n`;
  return `  download  fedit model fetch ${source} --identity ${base.identity}\n${moving}`;
}

function addTrainingOptions(command: Command): Command {
  return command
    .option(
      '--local-steps <n>',
      'optimizer steps each participant runs per round (fewer steps over more rounds learns better: docs/learning.md)',
      positive('--local-steps', true),
      10,
    )
    .option('--batch-size <n>', 'local batch size', positive('--batch-size', true), 4)
    .option('--lr <rate>', 'local learning rate', positive('--lr'), 3e-4)
    .option('--cutoff-len <n>', 'longest example in tokens', positive('--cutoff-len', true), 256)
    .addOption(
      new Option('--template <name>', 'prompt template participants train with')
        .choices(['alpaca', 'chat'])
        .default('alpaca'),
    );
}

function addLimitOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--max-update-norm <n>',
        "largest L2 norm of an update's change to the global adapter; larger updates are refused",
      )
        .argParser(limit('--max-update-norm', 'maxUpdateNorm', Number))
        .default(1000),
    )
    .addOption(
      new Option(
        '--max-upload-size <size>',
        'largest update a participant may upload, in bytes or with KiB, MiB, GiB (e.g. 64MiB)',
      )
        .argParser(limit('--max-upload-size', 'maxUploadBytes', parseByteSize))
        .default(512 * 1024 ** 2, '512MiB'),
    )
    .addOption(
      new Option(
        '--max-example-count <n>',
        'largest example count an update may claim (its weight in the mean); larger claims are refused',
      )
        .argParser(limit('--max-example-count', 'maxExampleCount', Number))
        .default(10_000_000),
    );
}

/** A limit option's parser: the config's own rule (LIMIT_RULES), the message naming the option. */
function limit(flag: string, key: keyof typeof LIMIT_RULES, parse: (raw: string) => number) {
  return (raw: string): number => {
    const value = parse(raw);
    if (!LIMIT_RULES[key].check(value))
      throw new FeditError('CLI_OPTION', `${flag} must be ${LIMIT_RULES[key].what}, got "${raw}"`);
    return value;
  };
}
