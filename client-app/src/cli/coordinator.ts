// `fedit coordinator ...` (operators). The coordinator package does the work; these commands parse
// options and print. `init`, with its many settings options, is in ./coordinator-init.ts.

import type { Command } from 'commander';
import { FeditError, federationPaths, fingerprint, publicIdentity } from '@fedit/shared';
import type { CoordinatorEvent } from '@fedit/coordinator';
import { fingerprintLine, registerInit } from './coordinator-init.ts';
import { positive } from './options.ts';
import { registerCoordinatorExport } from './result-export.ts';

/** The longest an invite may stay valid, in hours: ten years, createInvite's MAX_INVITE_HOURS. */
const MAX_INVITE_HOURS = 10 * 366 * 24;

function inviteHours(raw: string): number {
  const v = positive('--expires-in')(raw);
  if (v > MAX_INVITE_HOURS)
    throw new FeditError(
      'CLI_OPTION',
      `--expires-in must be at most ${MAX_INVITE_HOURS} hours (ten years), got "${raw}"`,
    );
  return v;
}

export function registerCoordinatorCommands(program: Command): void {
  const coordinator = program
    .command('coordinator')
    .description('run a federation: create it, invite participants, run the rounds');

  registerInit(coordinator);
  registerInvite(coordinator);
  registerParticipants(coordinator);
  registerStatus(coordinator);
  registerRevoke(coordinator);
  registerStart(coordinator);
  registerCoordinatorExport(coordinator);
}

function registerInvite(coordinator: Command): void {
  coordinator
    .command('invite')
    .description('print a one-time invite a participant pastes into `fedit client join`')
    .argument('<dir>', 'the federation folder')
    .requiredOption(
      '--url <url>',
      'the address participants reach the coordinator at, e.g. http://10.0.0.5:7150',
    )
    .option('--expires-in <hours>', 'hours until the invite stops working', inviteHours)
    .option('--note <text>', 'a note for your records (who it is for)')
    .option('-n, --count <n>', 'how many invites', positive('--count', true), 1)
    .option('--json', 'print one JSON object: the invites and the fingerprint', false)
    .action(async (dir: string, o) => {
      const { createInvite, openFederationDirChecked } = await import('@fedit/coordinator');
      // An invite hands out the federation's id and the coordinator's keys, and the joiner is then
      // shown the settings: refuse, as start does, when the folder is not what the log records.
      const { identity } = await openFederationDirChecked(dir);
      const operator = fingerprint(publicIdentity(identity));
      const invites = Array.from({ length: o.count as number }, () =>
        createInvite(dir, { url: o.url, expiresInHours: o.expiresIn, note: o.note }),
      );
      if (o.json) {
        process.stdout.write(JSON.stringify({ invites, fingerprint: operator }) + '\n');
        return;
      }
      // stdout stays the invites alone, one a line, for scripts that hand them out.
      process.stdout.write(invites.map((invite) => invite + '\n').join(''));
      process.stderr.write(fingerprintLine(operator) + '\n');
    });
}

function registerParticipants(coordinator: Command): void {
  coordinator
    .command('participants')
    .description('list enrolled participants (from the round log)')
    .argument('<dir>', 'the federation folder')
    .option('--json', 'print JSON', false)
    .action(async (dir: string, o) => {
      const { openFederationDirChecked } = await import('@fedit/coordinator');
      const { readRoundLog } = await import('@fedit/shared');
      const { records } = await readRoundLog(federationPaths(dir).log);
      // The list comes from the round log alone (a copy of log/ is enough), so a federation.json
      // or keys that no longer match the log do not make it wrong: say so, and list anyway, since
      // `start` and `invite` would refuse such a folder.
      await openFederationDirChecked(dir).catch((err: unknown) => {
        if (!(err instanceof FeditError)) throw err;
        if (err.code !== 'FEDERATION_MISSING') process.stderr.write(`warning: ${err.message}\n`);
      });
      const rows = records
        .filter((r) => r.kind === 'enrol' || r.kind === 'revoke')
        .reduce((m, r) => {
          const b = r.body as { participant: string; displayName?: string; reason?: string };
          if (r.kind === 'enrol')
            m.set(b.participant, {
              id: b.participant,
              name: b.displayName ?? '',
              enrolledAt: r.time,
              revoked: '',
            });
          else if (m.has(b.participant)) m.get(b.participant)!.revoked = `${r.time} (${b.reason})`;
          return m;
        }, new Map<string, { id: string; name: string; enrolledAt: string; revoked: string }>());
      if (o.json) process.stdout.write(JSON.stringify([...rows.values()]) + '\n');
      else
        for (const p of rows.values())
          process.stdout.write(
            `${p.id}  ${p.name.padEnd(20)}  enrolled ${p.enrolledAt}${p.revoked ? `  REVOKED ${p.revoked}` : ''}\n`,
          );
    });
}

function registerStatus(coordinator: Command): void {
  coordinator
    .command('status')
    .description(
      'the round timeline from the round log: selected, counted, dropped and why, and the held-out figures the participants signed (the means for the adapter each round trained from)',
    )
    .argument('<dir>', 'the federation folder (a copy of its log/ is enough)')
    .option('--json', 'print JSON', false)
    .action(async (dir: string, o) => {
      const { federationStatus, formatFederationStatus } = await import('@fedit/coordinator');
      const status = await federationStatus(dir);
      process.stdout.write(o.json ? JSON.stringify(status) + '\n' : formatFederationStatus(status));
    });
}

function registerRevoke(coordinator: Command): void {
  coordinator
    .command('revoke')
    .description(
      'remove a participant for good: a signed revoke record in the round log (a running coordinator appends it and drops the participant at once)',
    )
    .argument('<dir>', 'the federation folder')
    .argument('<participant>', 'the participant id (see fedit coordinator participants)')
    .requiredOption('--reason <text>', 'why, as the round log will record it')
    .action(async (dir: string, participant: string, o) => {
      const { openFederationDirChecked, revokeParticipant } = await import('@fedit/coordinator');
      // A revoke appends a record signed with the folder's keys under its federation id. The
      // coordinator is stopped (the lock) and will not start on a folder that differs from its log,
      // so refusing here too costs no safety and keeps such a folder from growing more records.
      await openFederationDirChecked(dir);
      const revocation = await revokeParticipant(dir, participant, o.reason);
      process.stdout.write(
        `revoked ${participant} (record ${revocation.seq}${revocation.live ? ', by the running coordinator: its connections are closed' : ''}): ${o.reason}\n`,
      );
    });
}

function registerStart(coordinator: Command): void {
  coordinator
    .command('start')
    .description(
      'run the coordinator: accept participants and run the rounds; after the last round (or on a finished federation) it serves the final adapter to participants until stopped',
    )
    .argument('<dir>', 'the federation folder')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on', positive('--port', true), 7150)
    .option(
      '--max-connections <n>',
      'most open connections (default 1024)',
      positive('--max-connections', true),
    )
    .option(
      '--max-connections-per-address <n>',
      'most open connections from one address (default 32; behind a reverse proxy, raise it to --max-connections)',
      positive('--max-connections-per-address', true),
    )
    .action(async (dir: string, o) => {
      const { startCoordinator } = await import('@fedit/coordinator');
      const c = await startCoordinator({
        dir,
        host: o.host,
        port: o.port,
        maxConnections: o.maxConnections,
        maxConnectionsPerAddress: o.maxConnectionsPerAddress,
        onEvent: printCoordinatorEvent,
      });
      // After the last round it goes on serving the final adapter (participants that were away
      // fetch it when they come back), so only a signal stops it.
      const stop = async () => {
        await c.close();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await c.finished;
    });
}

/** One line per coordinator event, prefixed with the time of day. */
function printCoordinatorEvent(e: CoordinatorEvent): void {
  const t = new Date().toISOString().slice(11, 19);
  switch (e.type) {
    case 'listening':
      process.stdout.write(`${t} listening on ${e.url}\n`);
      break;
    case 'round-open':
      process.stdout.write(
        `${t} round ${e.round} open: ${e.selected.length} selected of ${e.ready.length} ready, closes at ${e.quorum} updates\n`,
      );
      break;
    case 'round-closed':
      process.stdout.write(
        `${t} round ${e.round} closed: ${e.updates} updates -> ${e.adapter}${e.dropped.length ? `, dropped ${e.dropped.map((d) => `${d.participant.slice(0, 8)} (${d.reason})`).join(', ')}` : ''}\n`,
      );
      break;
    case 'round-aborted':
      process.stdout.write(`${t} round ${e.round} aborted: ${e.reason}\n`);
      break;
    case 'finished':
      process.stdout.write(
        e.earlier
          ? `${t} the federation finished earlier (${e.rounds} rounds): serving its results read-only, final adapter ${e.adapter}; no round opens, updates are refused; Ctrl-C stops\n`
          : `${t} all rounds done (${e.rounds}): serving the final adapter ${e.adapter} to participants until stopped (Ctrl-C)\n`,
      );
      break;
    case 'readiness':
      process.stdout.write(
        `${t} ${e.participant.slice(0, 8)} ${e.ready ? 'ready' : `not ready${e.reason ? ` (${e.reason})` : ''}`}\n`,
      );
      break;
    case 'paused':
      process.stdout.write(
        `${t} ${e.aborts} rounds aborted in a row: no round opens until a participant newly says it is ready\n`,
      );
      break;
    case 'recovered':
      process.stdout.write(
        `${t} round ${e.abortedRound} was open when the coordinator stopped; recorded as aborted\n`,
      );
      break;
    case 'revoked':
      process.stdout.write(`${t} ${e.participant.slice(0, 8)} revoked: ${e.reason}\n`);
      break;
    case 'permissions-tightened':
      process.stdout.write(
        `${t} made ${e.paths.length} path(s) of the folder owner-only (they held updates or keys others could read): ${e.paths.slice(0, 3).join(', ')}${e.paths.length > 3 ? ', ...' : ''}\n`,
      );
      break;
    default:
      process.stdout.write(`${t} ${e.type}${'participant' in e ? ` ${e.participant.slice(0, 8)}` : ''}\n`);
  }
}
