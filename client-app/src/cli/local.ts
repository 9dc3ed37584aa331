// `fedit train` and `fedit generate` (`fedit eval` is in eval.ts): local work with a base model and
// a dataset, no federation. The logic lives in the client core (../core); these commands parse
// options and print.

import { Option, type Command, type OptionValues } from 'commander';
import { join } from 'node:path';
import type { ExecutionProvider, ScheduleKind } from '@fedit/kernels';
import type { TrainingEvent, formatReport } from '../core/index.ts';
import { registerEvalCommand } from './eval.ts';
import { ProgressPrinter, stopOnCtrlC } from './progress.ts';
import { addLoraOptions, collect, formatOption, loraFromOptions, number, providerOption } from './options.ts';

export function registerLocalCommands(program: Command): void {
  registerTrain(program);
  registerEvalCommand(program);
  registerGenerate(program);
}

/** What commander hands `fedit train`'s action: the values its option parsers checked. */
type TrainOptions = OptionValues & Parameters<typeof loraFromOptions>[0];

function registerTrain(program: Command): void {
  addTrainingOptions(program.command('train')).action((o: TrainOptions) => runTrain(o));
}

/** `fedit train`'s options: model and data, prompt, LoRA, optimisation, evaluation, run control. */
function addTrainingOptions(command: Command): Command {
  return addRunControlOptions(addOptimisationOptions(addDataAndLoraOptions(command)));
}

/** The model, the data and how it becomes prompts; the adapter's shape (LoRA). */
function addDataAndLoraOptions(command: Command): Command {
  return addLoraOptions(
    command
      .description(
        'train a LoRA adapter on your own data, locally (no federation); resumes after a crash or Ctrl-C',
      )
      .requiredOption(
        '--model <dir>',
        'Hugging Face model folder (config.json, model.safetensors, tokenizer.json)',
      )
      .requiredOption(
        '--data <file>',
        'instruction data: JSON or JSONL in Alpaca, Dolly, ShareGPT or messages format (repeatable)',
        collect,
      )
      .option(
        '--adapter-out <dir>',
        'folder for the PEFT adapter: new, empty, or holding an earlier adapter, which is replaced (like PEFT save_pretrained); a folder with other files is refused before training',
        'adapter',
      )
      .addOption(formatOption())
      .addOption(
        new Option('--template <name>', "prompt template: FedIT's alpaca, or the model's chat template")
          .choices(['alpaca', 'chat'])
          .default('alpaca'),
      )
      .option(
        '--cutoff-len <n>',
        'longest example in tokens; longer ones are cut',
        number('--cutoff-len', { integer: true, min: 2 }),
        256,
      )
      .option('--train-on-inputs', 'learn prompt tokens too (default: responses only)', false),
  );
}

/** Batches, steps, learning rate and its schedule, regularisation. */
function addOptimisationOptions(command: Command): Command {
  return command
    .option(
      '--batch-size <n>',
      'examples per micro-batch',
      number('--batch-size', { integer: true, min: 1 }),
      4,
    )
    .option(
      '--grad-accum <n>',
      'micro-batches per optimizer step',
      number('--grad-accum', { integer: true, min: 1 }),
      1,
    )
    .option('--epochs <n>', 'passes over the data', number('--epochs', { above: 0 }), 1)
    .option(
      '--max-steps <n>',
      'stop after this many optimizer steps',
      number('--max-steps', { integer: true, min: 1 }),
    )
    .option('--lr <rate>', 'peak learning rate', number('--lr', { above: 0 }), 3e-4)
    .addOption(
      new Option('--schedule <name>', 'learning-rate schedule')
        .choices(['constant', 'linear', 'cosine'])
        .default('linear'),
    )
    .option(
      '--warmup-steps <n>',
      'linear warmup steps',
      number('--warmup-steps', { integer: true, min: 0 }),
      0,
    )
    .option('--weight-decay <w>', 'AdamW weight decay', number('--weight-decay', { min: 0 }), 0)
    .option(
      '--max-grad-norm <n>',
      'clip the global gradient norm (0: off)',
      number('--max-grad-norm', { min: 0 }),
      1,
    );
}

/** Evaluation, checkpoints, seeds, the device, and what to do with an earlier run. */
function addRunControlOptions(command: Command): Command {
  return command
    .option(
      '--eval-fraction <f>',
      'share of the data held out for evaluation',
      number('--eval-fraction', { min: 0 }),
      0.05,
    )
    .option(
      '--eval-every <n>',
      'evaluate every n steps (0: at the end only)',
      number('--eval-every', { integer: true, min: 0 }),
      0,
    )
    .option(
      '--checkpoint-every <n>',
      'save a resumable checkpoint every n steps',
      number('--checkpoint-every', { integer: true, min: 1 }),
      50,
    )
    .option('--pack', 'pack several short examples into one row', false)
    .option(
      '--seed <n>',
      'seed for the split, shuffling, initialisation and dropout',
      number('--seed', { integer: true }),
      42,
    )
    .addOption(providerOption())
    .option(
      '--threads <n>',
      'CPU threads (default: all cores)',
      number('--threads', { integer: true, min: 1 }),
    )
    .option('--restart', 'discard a checkpoint of an earlier, different run at the same place', false)
    .option('--report-only', 'print the data validation report and stop', false)
    .option('--json', 'print one JSON object at the end (progress still goes to stderr)', false);
}

async function runTrain(o: TrainOptions): Promise<void> {
  const { runLocalTraining, formatReport, prepareDataset } = await import('../core/index.ts');
  if (o.reportOnly) {
    const { loadTokenizer } = await import('@fedit/kernels');
    const tokenizer = await loadTokenizer(o.model);
    const prepared = await prepareDataset(
      (o.data as string[]).map((path) => (o.format ? { path, format: o.format } : path)),
      {
        tokens: {
          tokenizer,
          template: o.template,
          cutoffLen: o.cutoffLen,
          trainOnInputs: o.trainOnInputs,
        },
      },
    );
    process.stdout.write((o.json ? JSON.stringify(prepared.report) : formatReport(prepared.report)) + '\n');
    return;
  }
  const ctrlC = stopOnCtrlC('stopping after this step and saving a checkpoint');
  const controller = { signal: ctrlC.signal };
  const progress = new ProgressPrinter();
  try {
    const result = await runLocalTraining({
      modelDir: o.model,
      dataFiles: o.data,
      format: o.format,
      adapterOut: o.adapterOut,
      lora: loraFromOptions(o),
      template: o.template,
      cutoffLen: o.cutoffLen,
      trainOnInputs: o.trainOnInputs,
      batchSize: o.batchSize,
      microBatches: o.gradAccum,
      epochs: o.epochs,
      maxSteps: o.maxSteps,
      lr: o.lr,
      schedule: o.schedule as ScheduleKind,
      warmupSteps: o.warmupSteps,
      weightDecay: o.weightDecay,
      maxGradNorm: o.maxGradNorm,
      heldOutFraction: o.evalFraction,
      evalEvery: o.evalEvery,
      checkpointEvery: o.checkpointEvery,
      pack: o.pack,
      seed: o.seed,
      provider: o.provider as ExecutionProvider,
      threads: o.threads,
      restart: o.restart,
      signal: controller.signal,
      onEvent: (e) => printTrainingEvent(e, progress, formatReport),
    });
    if (!result.completed) process.exitCode = 130;
    if (o.json) {
      const { TRAINER_STATE_FILE } = await import('@fedit/shared');
      const { completed, steps, adapterDir, evalLoss, losses } = result;
      const trainerState = adapterDir && join(adapterDir, TRAINER_STATE_FILE);
      const lastLoss = losses.at(-1);
      process.stdout.write(
        JSON.stringify({ completed, steps, adapterDir, trainerState, lastLoss, evalLoss }) + '\n',
      );
    }
  } finally {
    ctrlC.dispose();
  }
}

function printTrainingEvent(
  e: TrainingEvent,
  progress: ProgressPrinter,
  describe: typeof formatReport, // loaded with the core by the action, not at startup
): void {
  switch (e.type) {
    case 'report':
      process.stderr.write(describe(e.report) + '\n\n');
      break;
    case 'ready':
      process.stderr.write(
        `training on ${e.provider}: ${e.totalSteps} steps (${e.stepsPerEpoch} per epoch), sequence buckets ${e.buckets.join(', ')}\n`,
      );
      break;
    case 'resumed':
      process.stderr.write(`resumed from the checkpoint at step ${e.step}\n`);
      break;
    case 'warning':
      process.stderr.write(`warning: ${e.message}\n`);
      break;
    case 'step':
      progress.update(e);
      break;
    case 'eval':
      progress.done(
        `held-out loss ${e.loss.toFixed(4)}, perplexity ${e.perplexity.toFixed(2)} (${e.tokens} tokens) at step ${e.step}`,
      );
      break;
    case 'stopped':
      progress.done(
        `stopped at step ${e.step}; run the same command again to resume (checkpoint in ${e.checkpointDir})`,
      );
      break;
    case 'done':
      progress.done(`adapter written to ${e.adapterDir} after ${e.steps} steps`);
      break;
  }
}

function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('generate text with a model, with or without an adapter (streams as it goes)')
    .requiredOption('--model <dir>', 'Hugging Face model folder')
    .option('--adapter <dir>', 'a LoRA adapter folder (PEFT format)')
    .requiredOption('--prompt <text>', 'what to say to the model')
    .addOption(
      new Option(
        '--style <name>',
        "prompt format: auto (the adapter's template, else the chat template), chat, alpaca, raw",
      )
        .choices(['auto', 'chat', 'alpaca', 'raw'])
        .default('auto'),
    )
    .option(
      '--max-new-tokens <n>',
      'stop after this many tokens',
      number('--max-new-tokens', { integer: true, min: 1 }),
      256,
    )
    .option('--temperature <t>', '0 = greedy', number('--temperature', { min: 0 }), 0)
    .option('--top-p <p>', 'nucleus sampling mass', number('--top-p', { above: 0 }), 1)
    .option('--seed <n>', 'sampling seed', number('--seed', { integer: true }), 0)
    .addOption(providerOption())
    .option('--threads <n>', 'CPU threads', number('--threads', { integer: true, min: 1 }))
    .option('--json', 'print one JSON object when done instead of streaming the text', false)
    .action(async (o) => {
      const { openChatSession } = await import('../core/index.ts');
      const session = await openChatSession({
        modelDir: o.model,
        adapterDir: o.adapter,
        provider: o.provider,
        threads: o.threads,
      });
      try {
        let text = '';
        for await (const piece of session.reply(o.prompt, {
          style: o.style,
          maxNewTokens: o.maxNewTokens,
          temperature: o.temperature,
          topP: Math.min(1, o.topP),
          seed: o.seed,
        })) {
          if (o.json) text += piece;
          else process.stdout.write(piece);
        }
        const style = o.style === 'auto' ? session.defaultStyle : o.style;
        process.stdout.write(o.json ? JSON.stringify({ prompt: o.prompt, style, text }) + '\n' : '\n');
      } finally {
        await session.close();
      }
    });
}
