// `fedit model fetch`: download a base model from the Hugging Face Hub (core/model/hub-fetch.ts),
// checked against the identity a federation pins. The repository and identity come from the
// command line, or from a federation this computer joined (its operator recorded them at init).

import { Option, type Command } from 'commander';
import { FeditError, formatModelRepo, parseModelRepo, type ModelRepo } from '@fedit/shared';
import type { ModelFetchProgress } from '../core/model/hub-fetch.ts';

export function registerModelCommands(program: Command): void {
  const model = program.command('model').description('get a base model to train on');
  model
    .command('fetch')
    .description(
      "download a model's config, safetensors weights and tokenizer from the Hugging Face Hub (resumable), checked against a federation's model identity",
    )
    .argument(
      '[repo]',
      "owner/name[@revision] (default: the repository of the joined federation's base model)",
    )
    .option('--out <folder>', 'the model folder to create (default: ./<name>)')
    .option(
      '--identity <hash>',
      'the fedit model identity (sha256:...) the download must have; a model of another one is removed',
      identityOption,
    )
    .option(
      '--federation <id>',
      "take the repository and identity from this joined federation's settings (default when no repo is given: the only one joined)",
    )
    .option(
      '--hub-url <url>',
      "the Hub's address (default: $HF_ENDPOINT, else the Hugging Face Hub)",
      hubUrlOption,
    )
    .addOption(
      new Option(
        '--home <dir>',
        'the fedit home folder (default: $FEDIT_HOME, else the user settings folder)',
      ),
    )
    .option('--json', 'print one JSON object', false)
    .action(async (repo: string | undefined, o: FetchOptions) => {
      const { source, identity } = await whatToFetch(repo, o);
      const { defaultModelFolder, fetchHubModel } = await import('../core/model/hub-fetch.ts');
      const { engineIdentity } = await import('../core/model/engine-identity.ts');
      const out = o.out ?? defaultModelFolder(source);
      const progress = new DownloadProgress();
      const fetched = await fetchHubModel({
        source,
        out,
        expectedIdentity: identity,
        hubUrl: o.hubUrl,
        identityOf: engineIdentity,
        onProgress: (p) => progress.update(p),
      });
      progress.end();
      if (o.json) {
        process.stdout.write(
          JSON.stringify({
            dir: fetched.dir,
            repo: source.repo,
            revision: source.revision ?? null,
            identity: fetched.identity,
            verified: identity !== undefined,
            files: fetched.files,
            bytes: fetched.bytes,
            resumedBytes: fetched.resumedBytes,
          }) + '\n',
        );
        return;
      }
      process.stdout.write(
        [
          `fetched ${formatModelRepo(source)} into ${fetched.dir} (${megabytes(fetched.bytes)}${fetched.resumedBytes > 0 ? `, ${megabytes(fetched.resumedBytes)} of it from an interrupted download` : ''})`,
          `  identity ${fetched.identity}${identity !== undefined ? " (the federation's)" : ' (not checked: pass --identity or --federation to check it)'}`,
          `  use it with --model ${fetched.dir}`,
          '',
        ].join('\n'),
      );
    });
}

function identityOption(raw: string): string {
  if (!/^sha256:[0-9a-f]{64}$/.test(raw))
    throw new FeditError(
      'CLI_OPTION',
      `--identity must be a model identity, sha256: and 64 hex digits; got "${raw}"`,
    );
  return raw;
}

function hubUrlOption(raw: string): string {
  if (!/^https?:\/\/[^\s]+$/.test(raw) || !URL.canParse(raw))
    throw new FeditError('CLI_OPTION', `--hub-url must be an http: or https: URL, got "${raw}"`);
  return raw;
}

interface FetchOptions {
  out?: string;
  identity?: string;
  federation?: string;
  hubUrl?: string;
  home?: string;
  json: boolean;
}

/** The repository and the identity to check, from the arguments or a joined federation. */
async function whatToFetch(
  repo: string | undefined,
  o: FetchOptions,
): Promise<{ source: ModelRepo; identity?: string }> {
  const given = repo === undefined ? undefined : parseModelRepo(repo, 'repo');
  if (given && o.federation === undefined) return { source: given, identity: o.identity };
  const { membershipBaseModel } = await import('../core/model/federation-model.ts');
  const base = await membershipBaseModel(o.home, o.federation).catch((error: unknown) => {
    if (given || o.federation !== undefined || (error as FeditError).code !== 'FEDERATION_NOT_JOINED')
      throw error;
    throw new FeditError(
      'MODEL_FETCH_NO_REPO',
      `name the repository to download (fedit model fetch owner/name@revision), or the federation whose model to fetch (--federation ID): ${(error as Error).message}`,
    );
  });
  if (o.identity !== undefined && o.identity !== base.identity)
    throw new FeditError(
      'CLI_OPTION',
      `--identity ${o.identity} is not federation ${base.federation}'s base model identity ${base.identity}`,
    );
  const source = given ?? base.source;
  if (!source)
    throw new FeditError(
      'MODEL_FETCH_NO_REPO',
      `federation ${base.federation} names no Hugging Face repository for its base model ${base.name}; give one (fedit model fetch owner/name@revision) or ask the operator for the model folder`,
    );
  return { source, identity: base.identity };
}

const megabytes = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** One redrawn line on a terminal; elsewhere a line per file as it completes. */
class DownloadProgress {
  #file: string | undefined;
  #last: ModelFetchProgress | undefined;
  readonly #out = process.stderr;

  update(p: ModelFetchProgress): void {
    if (this.#out.isTTY) {
      const percent = p.total > 0 ? Math.floor((100 * p.done) / p.total) : 100;
      this.#out.write(`\r${p.file}  ${megabytes(p.done)} of ${megabytes(p.total)}  ${percent}%\x1b[K`);
    } else if (this.#file !== undefined && p.file !== this.#file) {
      this.#out.write(
        `downloaded ${this.#file}  (${megabytes(this.#last!.done)} of ${megabytes(p.total)})\n`,
      );
    }
    this.#file = p.file;
    this.#last = p;
  }

  end(): void {
    if (this.#out.isTTY) this.#out.write('\n');
    else if (this.#file !== undefined)
      this.#out.write(
        `downloaded ${this.#file}  (${megabytes(this.#last!.done)} of ${megabytes(this.#last!.total)})\n`,
      );
  }
}
