// `fedit client ...`: a participant's commands. Join a federation with an invite (after reading its
// settings), take part in its rounds, list and forget memberships. The logic is in the client core
// (../core/federation); these commands parse options, ask, and print.

import { Option, type Command } from 'commander';
import {
  FeditError,
  dpOf,
  formatModelRepo,
  isPinnedRevision,
  privacyLine,
  type PrivacySeen,
} from '@fedit/shared';
import type { ExecutionProvider } from '@fedit/kernels';
import type { DatasetFormat } from '../core/data/index.ts';
import type { InviteInspection } from '../core/federation/index.ts';
import { describeLearning } from '../core/federation/learning-words.ts';
import { joinWords } from '../core/federation/privacy-words.ts';
import { LineLog, logFormatOption, type LogFormat } from './log-line.ts';
import { printParticipantEvents } from './client-run-log.ts';
import { ProgressPrinter, stopOnCtrlC } from './progress.ts';
import { registerClientExport } from './result-export.ts';
import { registerClientRename } from './client-rename.ts';
import { registerClientVerify } from './client-verify.ts';
import { collect, formatOption, providerOption, wholeNumber } from './options.ts';

/** --rank on join and run: this participant's own LoRA rank (core/federation/rank.ts). */
const ownRankOption = () =>
  new Option(
    '--rank <n>',
    "train this LoRA rank, from 1 to the federation's (less memory); kept for the next runs. Only a federation whose rule takes lower ranks (product-svd) accepts it",
  ).argParser(wholeNumber('--rank', 1));

const homeOption = () =>
  new Option('--home <dir>', 'the fedit home folder (default: $FEDIT_HOME, else the user settings folder)');

/** Where the base model can be downloaded, and the command that does it verified (when the operator said). */
function modelDownloadLines(base: { identity: string; repo?: string; revision?: string }): string[] {
  if (base.repo === undefined) return [];
  const source = formatModelRepo({ repo: base.repo, revision: base.revision });
  return [
    `  repository      ${source}${isPinnedRevision(base.revision) ? '' : ' (not pinned to a commit: it may have changed since)'}`,
    `  download        fedit model fetch ${source} --identity ${base.identity}`,
  ];
}

/** The settings a person reads before joining, as lines of text. */
export function formatInspection(i: InviteInspection): string {
  const s = i.settings;
  const raw = s.raw as Record<string, Record<string, unknown> | unknown>;
  const ppr = raw.participantsPerRound as { fraction?: number; minimum?: number } | undefined;
  const limits = raw.limits as { maxUpdateNorm?: number; maxUploadBytes?: number } | undefined;
  const aggregation = raw.aggregation as { rule?: string } | undefined;
  const lines = [
    `federation        ${s.name} (${i.federation})`,
    `coordinator       ${i.url}`,
    `  fingerprint     ${i.coordinatorFingerprint}  (compare it with the one the operator gave you)`,
    `base model        ${s.baseModel.name}`,
    `  identity        ${s.baseModel.identity}`,
    ...modelDownloadLines(s.baseModel),
    `LoRA              rank ${s.lora.rank}, alpha ${s.lora.alpha}, dropout ${s.lora.dropout}, on ${s.lora.targets.join(', ')}`,
    `prompts           template ${s.training.template}, cutoff ${s.training.cutoffLen} tokens${s.training.trainOnInputs ? ', training on prompts too' : ''}`,
  ];
  const t = s.training;
  if (t.localSteps !== undefined || t.batchSize !== undefined || t.lr !== undefined) {
    lines.push(
      `local training    ${t.localSteps ?? '?'} steps per round, batch ${t.batchSize ?? '?'}, learning rate ${t.lr ?? '?'}`,
    );
  }
  if (s.rounds !== undefined)
    lines.push(`rounds            ${s.rounds} aggregated (an aborted round is retried)`);
  if (ppr) {
    lines.push(
      `per round         ${Math.round((ppr.fraction ?? 1) * 100)}% of the participants ready to train, at least ${ppr.minimum ?? '?'}; joining alone is not being ready`,
    );
  }
  if (typeof raw.roundDeadlineSeconds === 'number') {
    lines.push(`round deadline    ${raw.roundDeadlineSeconds} s`);
  }
  if (aggregation?.rule) lines.push(`aggregation       ${aggregation.rule}`);
  if (limits?.maxUpdateNorm !== undefined) lines.push(`update norm limit ${limits.maxUpdateNorm}`);
  lines.push('', 'How the federation learns:', ...describeLearning(s).map((line) => `  - ${line}`));
  lines.push('', ...joinWords(s), ...dpLines(s, i.privacySeen));
  if (i.membership) {
    lines.push(
      '',
      `This computer already joined as ${i.membership.displayName} (${i.membership.participantId}).`,
    );
  }
  return lines.join('\n');
}

/** Differential privacy as join shows it: what it protects, what it does not, and what is spent. */
function dpLines(s: InviteInspection['settings'], seen: PrivacySeen | undefined): string[] {
  const setting = dpOf(s);
  if (!setting) return [privacyLine(s, seen) + '.'];
  const { dp, noise } = setting;
  const who =
    noise === 'central'
      ? 'the coordinator adds Gaussian noise'
      : 'each selected participant adds its share of Gaussian noise';
  return [
    `Differential privacy: each update's change is clipped to ${dp.clipNorm} and ${who}`,
    `(σ = ${dp.noiseMultiplier}) to their mean, which limits what the published adapters reveal about`,
    `what your data contributed (the round log still names who took part).${noise === 'central' ? ' It does not hide your update from the coordinator.' : ''}`,
    `${privacyLine(s, seen)} (from the last round record the coordinator signed).`,
  ];
}

async function askYesNo(question: string): Promise<boolean> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(question);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

const allowInsecureHttpOption = () =>
  new Option(
    '--allow-insecure-http',
    'connect over plain http:// to a coordinator that is not on this computer (readable and changeable by anyone on the way)',
  );
const caOption = () =>
  new Option('--ca <file>', "trust this PEM certificate for https:// (a coordinator's self-signed one)");

export function registerClientCommands(program: Command): void {
  const client = program
    .command('client')
    .description(
      'take part in a federation: join with an invite, train in its rounds, list or leave memberships',
    );

  client
    .command('join')
    .description("join a federation with an invite: shows the federation's settings and asks before joining")
    .argument('<invite>', 'the invite the operator sent you (fedit-invite:...)')
    .option('--name <name>', 'the name the operator sees for you (default: participant-<your id>)')
    .addOption(ownRankOption())
    .option('-y, --yes', 'join without asking (needed when input is not a terminal)', false)
    .option('--json', 'with --yes: print one JSON object (the settings shown and the membership)', false)
    .addOption(homeOption())
    .addOption(allowInsecureHttpOption())
    .addOption(caOption())
    .action(joinCommand);

  client
    .command('run')
    .description(
      "train in the federation's rounds with your data; Ctrl-C stops (an unsent update is kept). When the federation has ended, fetches its final adapter and exits",
    )
    .requiredOption('--model <dir>', "the federation's base model (Hugging Face folder)")
    .requiredOption('--data <file>', 'your instruction data, JSON or JSONL (repeatable)', collect)
    .addOption(formatOption())
    .option('--federation <id>', 'which joined federation (default: the only one)')
    .addOption(providerOption())
    .option('--threads <n>', 'CPU threads (default: all cores)', wholeNumber('--threads', 1))
    .option(
      '--rounds <n>',
      'stop after this many rounds (default: until the federation ends)',
      wholeNumber('--rounds', 1),
    )
    .addOption(ownRankOption())
    .addOption(logFormatOption())
    .addOption(homeOption())
    .addOption(allowInsecureHttpOption())
    .addOption(caOption())
    .action(runCommand);

  client
    .command('status')
    .description('the federations this computer has joined')
    .option('--json', 'print one JSON object', false)
    .addOption(homeOption())
    .action(statusCommand);

  client
    .command('leave')
    .description('forget a federation on this computer (its coordinator keeps your past contributions)')
    .argument('<federation>', 'the federation id (see fedit client status)')
    .addOption(homeOption())
    .action(leaveCommand);

  // The connection policy (core/federation/url-policy.ts) is set before any command connects.
  client.hook('preAction', async (_client, action) => {
    const { allowInsecureHttp, ca } = action.opts<{ allowInsecureHttp?: boolean; ca?: string }>();
    const { setConnectionPolicy } = await import('../core/federation/url-policy.ts');
    setConnectionPolicy({ allowInsecureHttp, caFile: ca });
  });

  registerClientExport(client, homeOption);
  registerClientRename(client, homeOption);
  registerClientVerify(client, homeOption);
}

async function joinCommand(
  inviteText: string,
  o: { name?: string; rank?: number; yes: boolean; json: boolean; home?: string },
): Promise<void> {
  if (o.json && !o.yes) throw new FeditError('CLI_OPTION', '--json joins without asking: give --yes too');
  const { inspectInvite, enrol, readInvite, checkDisplayName } = await import('../core/federation/join.ts');
  const invite = readInvite(inviteText); // a mistyped invite fails here, before any network
  if (o.name !== undefined) checkDisplayName(o.name);
  if (!o.yes && !process.stdin.isTTY) {
    throw new FeditError(
      'CLI_CONFIRM',
      'input is not a terminal, so fedit cannot ask you to confirm: read the settings first, then pass --yes to join',
    );
  }
  const inspection = await inspectInvite(invite, { home: o.home });
  if (o.rank !== undefined) {
    const { participantRank } = await import('../core/federation/rank.ts');
    participantRank(inspection.settings, o.rank, '--rank'); // a rank it cannot take: refused before asking
  }
  if (!o.json) process.stdout.write(formatInspection(inspection) + '\n\n');
  if (o.rank !== undefined && !o.json) {
    process.stdout.write(
      `You will train LoRA rank ${o.rank} (the federation's is ${inspection.settings.lora.rank}).\n\n`,
    );
  }
  if (!o.yes && !(await askYesNo(`Join federation ${inspection.federation}? [y/N] `))) {
    process.stderr.write('not joined\n');
    process.exitCode = 1;
    return;
  }
  const joined = await enrol(inspection, { home: o.home, displayName: o.name, rank: o.rank });
  const m = joined.membership;
  if (o.json) {
    const { federation, url, coordinatorFingerprint, settings } = inspection;
    const { participantId, displayName } = m;
    const { name, baseModel } = settings;
    process.stdout.write(
      JSON.stringify({
        ...{ federation, name, url, coordinatorFingerprint, baseModel },
        ...{ participantId, displayName, enrolled: joined.enrolled },
      }) + '\n',
    );
    return;
  }
  process.stdout.write(
    joined.enrolled
      ? `joined federation ${m.federation} as ${m.displayName} (participant id ${m.participantId})\n`
      : `already a member of federation ${m.federation} as ${m.displayName} (participant id ${m.participantId}); settings refreshed\n`,
  );
  const home = o.home ? ` --home ${o.home}` : '';
  if (inspection.settings.baseModel.repo !== undefined)
    process.stdout.write(`get the base model with: fedit model fetch --federation ${m.federation}${home}\n`);
  process.stdout.write(`take part with: fedit client run --model <dir> --data <file>${home}\n`);
}

/** `fedit client run`'s options, as commander parses them. */
interface RunCommandOptions {
  model: string;
  data: string[];
  format?: DatasetFormat;
  federation?: string;
  provider: string;
  threads?: number;
  rounds?: number;
  rank?: number;
  logFormat: LogFormat;
  home?: string;
}

async function runCommand(o: RunCommandOptions): Promise<void> {
  const { Participant } = await import('../core/federation/participant.ts');
  const progress = new ProgressPrinter();
  // A person at a terminal reads plain lines; a log (not a terminal, or JSON asked) needs the time.
  const log = new LineLog({
    format: o.logFormat,
    timestamps: !process.stdout.isTTY,
    ...(o.federation !== undefined && { federation: o.federation }),
  });
  const participant = new Participant();
  await printParticipantEvents(participant, progress, log);
  const ctrlC = stopOnCtrlC('stopping; an unsent update is kept and resumed next time');
  try {
    const result = await participant.start({
      modelDir: o.model,
      dataFiles: o.data,
      format: o.format,
      home: o.home,
      federationId: o.federation,
      provider: o.provider as ExecutionProvider,
      threads: o.threads,
      maxRounds: o.rounds,
      rank: o.rank,
      signal: ctrlC.signal,
    });
    const sent = result.history.filter((h) => h.uploaded).length;
    const updates = `${sent} update${sent === 1 ? '' : 's'}`;
    progress.done(
      log.format(
        'info',
        'stopped',
        result.reason === 'finished'
          ? result.finalAdapter
            ? `the federation has ended: your adapter is saved at ${result.finalAdapter.path} (this computer sent ${updates})`
            : `the federation's last round is over; this computer sent ${updates}`
          : result.reason === 'max-rounds'
            ? `stopped after ${o.rounds} round${o.rounds === 1 ? '' : 's'}; this computer sent ${updates}`
            : 'stopped; run the same command again to continue',
      ),
    );
    if (result.reason === 'stopped') process.exitCode = 130;
  } finally {
    ctrlC.dispose();
  }
}

async function statusCommand(o: { json: boolean; home?: string }): Promise<void> {
  const { listMemberships, readIdentityKeys, resolveHome } = await import('../core/federation/store.ts');
  const { parseFederationSettings } = await import('../core/federation/settings.ts');
  const { readRoundResults } = await import('../core/federation/results.ts');
  const { fingerprint } = await import('@fedit/shared');
  const home = resolveHome(o.home);
  // The public keys only: a file sealed by the desktop app's keychain still says who this is.
  const identity = await readIdentityKeys(home);
  const memberships = await listMemberships(home);
  const rows = [];
  for (const m of memberships) {
    const settings = parseFederationSettings(m.config, `${m.federation}'s stored settings`);
    // The newest round record this computer verified that carries a privacy account.
    const seen = (await readRoundResults(home, m.federation)).findLast((r) => r.epsilon !== undefined);
    rows.push({
      federation: m.federation,
      name: settings.name,
      coordinator: m.url,
      participantId: m.participantId,
      displayName: m.displayName,
      joinedAt: new Date(m.joinedAt).toISOString(),
      baseModel: settings.baseModel.name,
      loraRank: m.rank ?? settings.lora.rank,
      federationRank: settings.lora.rank,
      configHash: m.configHash,
      privacy: privacyLine(settings, seen && { epsilon: seen.epsilon!, round: seen.round }),
    });
  }
  const id = identity ? fingerprint(identity.public) : null;
  const sealed = identity?.protection === 'os-keychain';
  if (o.json) {
    const protection = identity && { identityProtection: identity.protection };
    process.stdout.write(
      JSON.stringify({ home, participantId: id, ...protection, memberships: rows }) + '\n',
    );
    return;
  }
  process.stdout.write(`fedit home ${home}\n`);
  process.stdout.write(id ? `identity   ${id}\n` : 'identity   none yet (made when you first join)\n');
  if (sealed)
    process.stdout.write(
      "           sealed by the desktop app's keychain: only the app can use it, not this command line\n",
    );
  if (rows.length === 0) {
    process.stdout.write('no federations joined (fedit client join <invite>)\n');
    return;
  }
  for (const r of rows) {
    process.stdout.write(
      `\n${r.federation}  ${r.name}\n  coordinator ${r.coordinator}\n  you         ${r.displayName} (${r.participantId}), joined ${r.joinedAt}\n  base model  ${r.baseModel}\n  LoRA rank   ${r.loraRank}${r.loraRank === r.federationRank ? '' : ` (the federation's: ${r.federationRank})`}\n  privacy     ${r.privacy}\n`,
    );
  }
}

async function leaveCommand(federation: string, o: { home?: string }): Promise<void> {
  const { removeMembership, resolveHome } = await import('../core/federation/store.ts');
  const home = resolveHome(o.home);
  if (!(await removeMembership(home, federation))) {
    throw new FeditError(
      'FEDERATION_NOT_JOINED',
      `this computer has not joined federation ${JSON.stringify(federation)} (fedit home: ${home})`,
    );
  }
  process.stdout.write(
    `forgot federation ${federation} on this computer; to be removed from its rounds, ask the operator\n`,
  );
}
