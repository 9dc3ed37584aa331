// The lifecycle rules of a round log: what may follow what. Pure: they judge a record against the
// fold of the records before it.
//
//   the first record is a config naming the initial global adapter; the global adapter does not
//   change while a round is open; participants are enrolled once and revoked at most once, for
//   good; a signing key is enrolled once (under one participant id, revoked or not); a participant
//   id recorded with both of its keys is their fingerprint; a round is aborted only while open;
//   a record of another kind carries the number of the last round opened; a rename names an
//   enrolled, unrevoked participant, a valid new name, a nonce never seen before and the
//   participant's own signature over them (protocol/rename.ts); the federation finishes once, with
//   no round open, naming the rounds aggregated and the global adapter the log shows (and no fewer
//   rounds than its config asks for), and no round opens after it. Opening and closing a
//   round have rules of their own (rules-round.ts).

import { checkSecaggRecord } from './rules-secagg.ts';
import { fingerprint } from '../crypto/identity.ts';
import type { ReportProblem } from './problems.ts';
import { renameRequest } from '../protocol/messages.ts';
import { verifyRename } from '../protocol/rename.ts';
import { SchemaError } from '../schema/schema.ts';
import type { ConfigBody, EnrolBody, FinishedBody, RenameBody, RoundRecord } from './record.ts';
import { configHash } from '../federation/config.ts';
import { checkClose, checkOpen } from './rules-round.ts';
import { budgetSpent } from './privacy.ts';
import { readRecordedConfig, type FederationState } from './state.ts';

const HEX_KEY = /^[0-9a-fA-F]{64}$/;

/**
 * The participant id the coordinator derives from an enrolment's keys (the fingerprint of the
 * signing and box keys, as the protocol writes them: 64 hex digits each), or undefined when the
 * record does not carry both in that form (logs written by tests, with made-up keys).
 */
function fingerprintOf({ publicKey, boxKey }: EnrolBody): string | undefined {
  if (!HEX_KEY.test(publicKey) || typeof boxKey !== 'string' || !HEX_KEY.test(boxKey)) return undefined;
  return fingerprint({
    sign: new Uint8Array(Buffer.from(publicKey, 'hex')),
    box: new Uint8Array(Buffer.from(boxKey, 'hex')),
  });
}

/** `position`: the record's position in the log (0 for the first). */
export function checkLifecycle(
  record: RoundRecord,
  state: FederationState,
  position: number,
  problem: ReportProblem,
  requireConfig = false,
): void {
  if (position === 0 && (record.kind !== 'config' || record.body.globalAdapter === undefined)) {
    problem('FIRST_NOT_CONFIG', 'the first record must be a config record naming the initial global adapter');
  }
  const open = state.openRound;
  switch (record.kind) {
    case 'config':
      if (record.body.globalAdapter !== undefined && open) {
        problem('ROUND_ORDER', `changes the global adapter while round ${open.round} is open`);
      }
      checkConfigSettings(record.body, position === 0 && requireConfig, problem);
      // Every seed is fixed at init or not at all: a later commitment would let the coordinator
      // start a chain of its choosing once it knows who enrolled.
      if (position > 0 && record.body.seedChain !== undefined)
        problem('SEED_REVEAL', 'commits to a seed chain; only the first config record may');
      break;
    case 'enrol':
      checkEnrol(record.body, state, problem);
      break;
    case 'rename':
      checkRename(record.federation, record.body, state, problem);
      break;
    case 'revoke': {
      const { participant } = record.body;
      if (state.participant(participant) === undefined)
        problem('NOT_ENROLLED', `revokes ${participant}, who was never enrolled`);
      else if (state.isRevoked(participant))
        problem('REVOKED_PARTICIPANT', `revokes ${participant} a second time`);
      break;
    }
    case 'round-open':
      if (state.finished)
        problem(
          'AFTER_FINISHED',
          `opens round ${record.round} after the federation finished (record ${state.finished.seq})`,
        );
      checkOpen(record.round, record.body, state, problem);
      break;
    case 'round-closed':
      checkClose(record.round, record.body, state, problem);
      break;
    case 'round-aborted':
      if (open?.round !== record.round)
        problem('ROUND_ORDER', `aborts round ${record.round}, which is not open`);
      break;
    case 'finished':
      checkFinished(record.body, state, problem);
      break;
    case 'secagg-keys':
    case 'secagg-shares':
    case 'secagg-unmask':
    case 'secagg-consistency':
      checkSecaggRecord(record, state, problem);
      break;
  }
  if (!record.kind.startsWith('round-') && record.round !== state.lastRound) {
    problem('ROUND_FIELD', `has round ${record.round}, but the last round opened is ${state.lastRound}`);
  }
}

/** A federation finishes once, with no round open, stating the rounds and adapter the log shows. */
function checkFinished(body: FinishedBody, state: FederationState, problem: ReportProblem): void {
  if (state.finished)
    problem(
      'AFTER_FINISHED',
      `finishes the federation a second time (first at record ${state.finished.seq})`,
    );
  const open = state.openRound;
  if (open) problem('ROUND_ORDER', `finishes the federation while round ${open.round} is open`);
  if (body.rounds !== state.aggregatedRounds)
    problem(
      'FINISHED_MISMATCH',
      `says ${body.rounds} rounds were aggregated, but the log shows ${state.aggregatedRounds}`,
    );
  if (body.globalAdapter !== state.globalAdapter)
    problem(
      'FINISHED_MISMATCH',
      `names the final adapter ${body.globalAdapter}, but the log's global adapter is ${state.globalAdapter}`,
    );
  const planned = state.config?.rounds;
  if (planned !== undefined && state.aggregatedRounds < planned && !budgetSpent(state))
    problem(
      'FINISHED_MISMATCH',
      `finishes after ${state.aggregatedRounds} aggregated rounds, before the ${planned} the config asks for${state.config?.differentialPrivacy?.epsilonBudget === undefined ? '' : ', and one more round would still fit in its privacy budget'}`,
    );
}

function checkEnrol(body: EnrolBody, state: FederationState, problem: ReportProblem): void {
  const { participant, publicKey } = body;
  const known = state.participant(participant);
  if (known?.revoked) problem('REVOKED_PARTICIPANT', `enrols ${participant} again after its revocation`);
  else if (known) problem('ALREADY_ENROLLED', `enrols ${participant}, who is already enrolled`);
  // The coordinator refuses a key enrolled before (ENROL_KEY_IN_USE, or AUTH_REVOKED once
  // revoked): under a second id the same participant would be selected and counted twice.
  const holder = state.participantWithKey(publicKey);
  if (holder !== undefined && holder !== participant)
    problem(
      'KEY_ALREADY_ENROLLED',
      `enrols ${participant} with signing key ${publicKey}, which ${holder} enrolled with` +
        `${state.isRevoked(holder) ? ' (revoked since)' : ''}: one key is one participant`,
    );
  const derived = fingerprintOf(body);
  if (derived !== undefined && derived !== participant)
    problem(
      'PARTICIPANT_ID',
      `enrols ${participant}, but the keys it records are those of participant ${derived} (the fingerprint of the signing and box keys)`,
    );
}

function checkRename(
  federation: string,
  body: RenameBody,
  state: FederationState,
  problem: ReportProblem,
): void {
  const { participant, displayName, nonce, signature } = body;
  const publicKey = state.participantKey(participant);
  if (publicKey === undefined)
    return problem('NOT_ENROLLED', `renames ${participant}, who was never enrolled`);
  if (state.isRevoked(participant)) problem('REVOKED_PARTICIPANT', `renames ${participant}, who was revoked`);
  try {
    renameRequest.shape.displayName.parse(displayName, 'body.displayName');
  } catch (error) {
    if (!(error instanceof SchemaError)) throw error;
    problem('RENAME_NAME', `renames ${participant} to a name enrolment would refuse: ${error.message}`);
  }
  if (state.hasRenameNonce(nonce))
    problem('RENAME_REPLAYED', `renames ${participant} with nonce ${nonce}, which an earlier rename carried`);
  const signed =
    HEX_KEY.test(publicKey) &&
    verifyRename(
      new Uint8Array(Buffer.from(publicKey, 'hex')),
      { federation, participant, displayName, nonce: new Uint8Array(Buffer.from(nonce, 'hex')) },
      new Uint8Array(Buffer.from(signature, 'hex')),
    );
  if (!signed)
    problem(
      'RENAME_SIGNATURE',
      `renames ${participant} to ${JSON.stringify(displayName)}, but the signature is not the participant's over this federation, name and nonce`,
    );
}

/**
 * The federation config a config record holds must parse (its limits are what every update is
 * held to), and its announced hash must be the config's: a coordinator cannot record one config
 * and announce another. `configHashVersion` 2 marks a hash computed by configHash as it is now; a
 * log written before it carries a v1 hash, which is not recomputed.
 */
function checkConfigSettings(body: ConfigBody, required: boolean, problem: ReportProblem): void {
  const { config, problem: unreadable } = readRecordedConfig(body);
  if (unreadable !== undefined) {
    problem('CONFIG_UNREADABLE', `holds a federation config that does not parse: ${unreadable}`);
  } else if (config === undefined) {
    if (required)
      problem(
        'CONFIG_UNREADABLE',
        'holds no federation config (settings.config): the limits every update is held to cannot be checked',
      );
  } else if (body.settings.configHashVersion === 2 && body.settings.configHash !== configHash(config)) {
    problem(
      'CONFIG_HASH',
      `announces config hash ${String(body.settings.configHash)}, but the config it holds hashes to ${configHash(config)}`,
    );
  }
}
