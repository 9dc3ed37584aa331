// A federation's global adapter as a PEFT adapter folder a person can use: the one writer behind
// `fedit coordinator export` (from the federation folder) and `fedit client export` (from a
// participant's adapter cache). Global adapters travel and are stored as bare safetensors blobs,
// named by content hash; this adds what makes them usable and checkable:
//
//   adapter_model.safetensors   the blob's tensors unchanged (PEFT names, F32), plus metadata:
//                               fedit.base_model_identity, fedit.template (the prompt template the
//                               federation trained with, which `fedit eval`/`generate` then use by
//                               themselves), fedit.federation, fedit.federation_name, fedit.round,
//                               fedit.log_head (when known)
//   adapter_config.json         PEFT's LoraConfig from the federation's lora settings
//   README.md                   a model card: federation, rounds, rule and its settings, counted
//                               contributions, the log head, and the `fedit audit` command
//
// The tensors are written as they are, so the folder's content hash (fedit.tensors_hash) is the
// global adapter's hash in the round log: the audit's record of the round names this very folder.

import type { Tensor } from '../tensors/tensor.ts';
import { writeAdapter, type LoraAdapter } from '../adapter/adapter.ts';
import type { FederationConfig } from './config.ts';

/** Where a global adapter came from, as much as the exporter knows. */
export interface FederationResult {
  config: FederationConfig;
  /** The round whose global adapter this is (the adapter after that round closed). */
  round: number;
  /** hashTensors of the adapter's tensors, as the round log names it. */
  adapterHash: string;
  /** Rounds aggregated up to and including `round`. */
  roundsAggregated: number;
  /** Updates counted into those rounds' aggregates, summed. */
  contributions: number;
  /** The rule of the round and its settings, as the round record names them. */
  rule: { name: string; config: unknown };
  /** Hash of the last record of the round log at export time; unknown to a participant. */
  logHead?: string;
  /** The coordinator's public signing key (32 bytes), which the audit command checks the log against. */
  coordinatorKey: Uint8Array;
  /**
   * The federation folder as the card's audit command names it; absent for a participant, who
   * has none of its own: the command then says FOLDER, a copy of the operator's log/ and blobs/.
   */
  auditFolder?: string;
  /** Who exported it: what the card says about where the numbers come from. */
  exportedBy: 'coordinator' | 'participant';
}

/**
 * Writes `tensors` (the global adapter `result.adapterHash`) as a PEFT adapter folder at `out`,
 * which must be new or empty (checkAdapterTarget's ADAPTER_EXISTS otherwise).
 */
export async function writeFederationAdapter(
  out: string,
  tensors: ReadonlyMap<string, Tensor>,
  result: FederationResult,
): Promise<LoraAdapter> {
  const { config } = result;
  const extra: Record<string, string> = {
    template: config.training.template,
    federation: config.id,
    federation_name: config.name,
    round: String(result.round),
  };
  if (result.logHead !== undefined) extra.log_head = result.logHead;
  return writeAdapter(
    out,
    {
      config: {
        rank: config.lora.rank,
        alpha: config.lora.alpha,
        dropout: config.lora.dropout,
        targetModules: config.lora.targets,
        baseModelNameOrPath: config.baseModel.name,
        taskType: 'CAUSAL_LM',
      },
      tensors,
      metadata: { baseModelIdentity: config.baseModel.identity, extra },
    },
    { readme: federationModelCard(result) },
  );
}

/** The shell command that verifies the federation's log, chain and every aggregate. */
export function auditCommand(result: Pick<FederationResult, 'auditFolder' | 'coordinatorKey'>): string {
  const folder = result.auditFolder === undefined ? 'FOLDER' : shellWord(result.auditFolder);
  return `fedit audit ${folder} --key ${Buffer.from(result.coordinatorKey).toString('hex')}`;
}

/** README.md: a Hugging Face model card (YAML front matter PEFT writes, then what a reader checks). */
export function federationModelCard(result: FederationResult): string {
  const { config } = result;
  const ruleSettings = JSON.stringify(result.rule.config ?? {});
  const seen = result.exportedBy === 'participant' ? ' (in the rounds this participant saw close)' : '';
  const lines = [
    '---',
    'library_name: peft',
    `base_model: ${JSON.stringify(config.baseModel.name)}`,
    'tags: [fedit, lora, federated-learning]',
    '---',
    '',
    `# ${config.name}: the global adapter after round ${result.round}`,
    '',
    `A LoRA adapter trained by federated instruction tuning with fedit: ${result.roundsAggregated >= config.rounds ? 'the federation\u2019s final result' : `${result.roundsAggregated} of its ${config.rounds} rounds aggregated`}.`,
    '',
    '| | |',
    '|---|---|',
    `| federation | ${config.name} (\`${config.id}\`) |`,
    `| round | ${result.round}; ${result.roundsAggregated} of ${config.rounds} aggregated${seen} |`,
    `| rule | \`${result.rule.name}\`, settings \`${ruleSettings}\` |`,
    `| contributions | ${result.contributions} counted updates${seen} |`,
    `| base model | ${config.baseModel.name} (identity \`${config.baseModel.identity}\`) |`,
    `| LoRA | r ${config.lora.rank}, alpha ${config.lora.alpha}, targets ${config.lora.targets.join(', ')} |`,
    `| prompt template | ${config.training.template} |`,
    `| adapter hash | \`${result.adapterHash}\` |`,
    `| log head | ${result.logHead === undefined ? 'not known to a participant: ask the operator for the round log' : `\`${result.logHead}\``} |`,
    '',
    '## Verify it',
    '',
    `The round log names this adapter by its hash in round ${result.round}'s record. With the`,
    "federation's log/ and blobs/ (the federation folder, or a copy of them), this re-checks the",
    "log's chain and signatures against the coordinator's key and recomputes every aggregate:",
    '',
    '```sh',
    auditCommand(result),
    '```',
    '',
    ...(result.auditFolder === undefined
      ? [
          "FOLDER is the federation folder, or a copy of its log/ and blobs/, which the operator shares; the key is the coordinator's, as this participant's invite pinned it.",
          '',
        ]
      : []),
    '## Use it',
    '',
    `\`fedit eval --model <base model> --adapter <this folder> --data <file>\` and \`fedit generate\` use the ${config.training.template} template it was trained with; PEFT loads the folder with \`PeftModel.from_pretrained\`.`,
    '',
  ];
  return lines.join('\n');
}

/** `word` as one shell word: left bare when it needs no quoting, else in single quotes. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:@=+-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
