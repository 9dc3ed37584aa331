// `fedit eval`: how well a model, with or without an adapter, fits an instruction dataset (loss,
// perplexity) and, with --metric, how well its answers match the dataset's responses. The work is
// the client core's evaluateDataset, the one evaluation path; this file parses options and prints.

import { Option, type Command, type OptionValues } from 'commander';
import { writeFile } from 'node:fs/promises';
import { FeditError } from '@fedit/shared';
import { TEXT_METRICS, type TextMetric } from '../core/text-metrics.ts';
import { collect, formatOption, number, providerOption } from './options.ts';

export function registerEvalCommand(program: Command): void {
  program
    .command('eval')
    .description(
      'loss and perplexity of a model, with or without an adapter, on an instruction dataset; with --metric, also how well its answers match the responses',
    )
    .requiredOption('--model <dir>', 'Hugging Face model folder')
    .option('--adapter <dir>', 'a LoRA adapter folder (PEFT format)')
    .requiredOption('--data <file>', 'instruction data (repeatable)', collect)
    .addOption(formatOption())
    .addOption(
      new Option('--template <name>', "prompt template (default: the adapter's, else alpaca)").choices([
        'alpaca',
        'chat',
      ]),
    )
    .option(
      '--cutoff-len <n>',
      'longest example in tokens',
      number('--cutoff-len', { integer: true, min: 2 }),
      256,
    )
    .option('--train-on-inputs', 'score prompt tokens too', false)
    .option('--batch-size <n>', 'examples per batch', number('--batch-size', { integer: true, min: 1 }), 4)
    .addOption(
      new Option(
        '--metric <name>',
        "answer each prompt (greedy) and score the answer against the response: exact-match, token-f1 (SQuAD's F1) or rouge-l (repeatable)",
      ).argParser(collectMetric), // its own parser: repeatable, and the error names the choices
    )
    .option(
      '--max-new-tokens <n>',
      'longest answer for --metric, in tokens',
      number('--max-new-tokens', { integer: true, min: 1 }),
      128,
    )
    .option('--predictions <file>', 'with --metric: write each answer and its scores to this JSON Lines file')
    .addOption(providerOption())
    .option('--threads <n>', 'CPU threads', number('--threads', { integer: true, min: 1 }))
    .option('--json', 'print one JSON object', false)
    .action((o: EvalOptions) => runEval(o));
}

const TEXT_METRIC_NAMES: readonly string[] = TEXT_METRICS;

/** What commander hands `fedit eval`'s action. */
type EvalOptions = OptionValues & { metric?: TextMetric[]; predictions?: string; json: boolean };

/** --metric is repeatable; a name given twice is computed once. */
function collectMetric(value: string, previous: TextMetric[] = []): TextMetric[] {
  if (!TEXT_METRIC_NAMES.includes(value)) {
    throw new FeditError(
      'CLI_OPTION',
      `--metric must be one of ${TEXT_METRIC_NAMES.join(', ')}, got "${value}"`,
    );
  }
  return previous.includes(value as TextMetric) ? previous : [...previous, value as TextMetric];
}

async function runEval(o: EvalOptions): Promise<void> {
  if (o.predictions !== undefined && !o.metric) {
    throw new FeditError('CLI_OPTION', '--predictions needs --metric: without it no answers are generated');
  }
  const { evaluateDataset, formatReport } = await import('../core/index.ts');
  const r = await evaluateDataset({
    modelDir: o.model,
    adapterDir: o.adapter,
    dataFiles: o.data,
    format: o.format,
    template: o.template,
    cutoffLen: o.cutoffLen,
    trainOnInputs: o.trainOnInputs,
    batchSize: o.batchSize,
    metrics: o.metric,
    maxNewTokens: o.maxNewTokens,
    provider: o.provider,
    threads: o.threads,
  });
  // The same report as `fedit train`, so rows left out of the loss are named with file:line.
  process.stderr.write(formatReport(r.report) + '\n\n');
  if (o.predictions !== undefined && r.generation) {
    const lines = r.generation.answers.map((a) => JSON.stringify(a) + '\n');
    await writeFile(o.predictions, lines.join(''));
  }
  const generation = r.generation && {
    examples: r.generation.examples,
    maxNewTokens: r.generation.maxNewTokens,
    metrics: r.generation.means,
  };
  if (o.json) {
    process.stdout.write(
      JSON.stringify({
        loss: r.loss,
        perplexity: r.perplexity,
        tokens: r.tokens,
        examples: r.examples,
        template: r.template,
        skipped: r.report.skipped.total,
        ...(generation && { generation }),
      }) + '\n',
    );
    return;
  }
  process.stdout.write(
    `loss ${r.loss.toFixed(4)}  perplexity ${r.perplexity.toFixed(3)}  over ${r.tokens} tokens of ${r.examples} examples (template ${r.template})\n`,
  );
  if (generation) {
    const scores = Object.entries(generation.metrics).map(([name, v]) => `${name} ${v.toFixed(4)}`);
    process.stdout.write(
      `${scores.join('  ')}  over ${generation.examples} greedy answers of at most ${generation.maxNewTokens} tokens\n`,
    );
  }
}
