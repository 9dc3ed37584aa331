// Verification of a round log: what an auditor runs on a log alone (and, when the blob store is at
// hand, on the tensors it names), and what the coordinator runs on every record before appending
// it, so that its log always verifies. It is a fold (state.ts) that judges each record before
// applying it (checker.ts); the rules stand in one file per group, named below.
//
// Checked, record by record:
//   shape       (record.ts) every field, its type and form; a canonical encoding
//   integrity   (rules-integrity.ts) its hash recomputed from its canonical encoding; the
//               coordinator's signature over that hash; seq = position; prevHash = previous hash
//               (ZERO_HASH first); one federation; time never decreasing
//   lifecycle   (rules-lifecycle.ts) the first record is a config naming the initial global
//               adapter; participants are enrolled once and revoked at most once, for good; a
//               signing key is enrolled once (under one participant id, revoked or not); a
//               participant id recorded with both of its keys is their fingerprint; rounds open
//               one at a time, numbered 1, 2, ..., and each is closed or aborted by the next
//               round-related record for it
//   rounds      (rules-round.ts) the rule exists and accepts its config; the selection is
//               re-derived from its seed over the participants eligible when the round opened;
//               the round trains from the current global adapter; the close repeats the open's
//               rule, selection and adapter; every counted update comes from an enrolled,
//               unrevoked participant, listed in canonical order
//   updates     (update-rules.ts) the coordinator's own admission rules (admission.ts) applied to
//               each counted update: its participant was not dropped and is counted once; its
//               recorded envelope is the enrolled key's, for this
//               federation and round, which selected it, from the round's global adapter, within
//               the federation's example and byte limits (when the log records the config), never
//               counted before (a replay), claiming the record's example count; with `blobs`, it is
//               the participant's signature over exactly the stored tensors, which have the global
//               adapter's names and shapes, finite values and a norm within the federation's bound
//   tensors     (recompute.ts) with `blobs`: every blob the log names (the initial adapter, each
//               round's adapters in and out, every counted update) is there (a missing one is a
//               problem, not a skipped check) and hashes to its name; aggregateContributions, the
//               coordinator's own computation, applied to the stored updates gives exactly
//               globalAdapterOut
//   lines       through verifyRoundLogLines: a log line that is not a record, or not in canonical
//               form, is a problem naming the line (and the record and round its text names)

import { RoundLogChecker } from './checker.ts';
import type { LogLine } from './log-file.ts';
import type { VerificationReport, VerifyOptions } from './problems.ts';

/**
 * Verifies a whole round log (records in file order). Never throws on bad records: every problem
 * is in the report, with the first one in `firstFailure`.
 */
export function verifyRoundLog(records: readonly unknown[], options: VerifyOptions = {}): VerificationReport {
  const checker = new RoundLogChecker(options);
  for (const record of records) checker.add(record);
  return checker.report();
}

/**
 * Verifies a round log from its lines as scanRoundLog reads them, so that a line that is not a
 * record is one more problem (naming the line) rather than an error that stops the audit.
 */
export function verifyRoundLogLines(
  lines: readonly LogLine[],
  options: VerifyOptions = {},
): VerificationReport {
  const checker = new RoundLogChecker(options);
  for (const line of lines) checker.addLine(line);
  return checker.report();
}
