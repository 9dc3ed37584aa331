// Preloaded (node --import) into a `fedit coordinator start` child process by the crash tests:
// the process kills itself with SIGKILL at a chosen point while it closes a round, so a test can
// restart it on the same folder and check what recovery makes of it. Test-only: nothing in the
// coordinator knows about it. FEDIT_TEST_CRASH chooses the point:
//
//   before-close-record  the aggregate is in the blob store, the round-closed record not written
//   torn-close-record    the round-closed line is half written (a crash in the middle of the write)
//   after-close-record   the round-closed record is durable; nothing after it (index, broadcast) ran

import { appendFileSync } from 'node:fs';
import { RoundLog, type RoundRecord, type RoundRecordDraft } from '@fedit/shared';

const point = process.env.FEDIT_TEST_CRASH;

function die(): Promise<never> {
  process.kill(process.pid, 'SIGKILL');
  return new Promise<never>(() => {});
}

if (point) {
  const append = RoundLog.prototype.append;
  RoundLog.prototype.append = function (this: RoundLog, draft: RoundRecordDraft): Promise<RoundRecord> {
    if (draft.kind !== 'round-closed') return append.call(this, draft);
    process.stdout.write(`crash-hook: SIGKILL at ${point}\n`);
    if (point === 'before-close-record') return die();
    if (point === 'torn-close-record') {
      appendFileSync(this.path, '{"body":{"dropped":[],"globalAdapterIn":"sha256:');
      return die();
    }
    return append.call(this, draft).then(die);
  };
}
