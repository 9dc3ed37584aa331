// Temporary model folders holding whichever Hugging Face files a test needs.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Writes each entry as a file of a fresh folder: strings as they are (for broken or Jinja files),
 * anything else as JSON. Removed when the test ends, through `teardown` (ava's t.teardown).
 */
export function modelDir(files: Record<string, unknown>, teardown: (fn: () => void) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-tokenizer-'));
  teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, content] of Object.entries(files)) {
    writeFileSync(join(dir, name), typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  }
  return dir;
}
