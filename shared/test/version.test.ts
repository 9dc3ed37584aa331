import test from 'ava';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FEDIT_VERSION } from '../src/version.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

test('every package.json carries FEDIT_VERSION', (t) => {
  for (const pkg of ['.', 'shared', 'kernels', 'coordinator', 'client-app']) {
    const { version } = JSON.parse(readFileSync(join(root, pkg, 'package.json'), 'utf8')) as {
      version: string;
    };
    t.is(version, FEDIT_VERSION, `${pkg}/package.json`);
  }
});
