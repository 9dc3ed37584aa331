#!/usr/bin/env node
// The `fedit` command. In a clone of the repository (its TypeScript sources are beside this file),
// it runs those sources through tsx, so `npx fedit ...` works right after `npm ci` with no build
// step and never runs a stale dist/. An installed package has no src/ (package.json "files") and
// runs the compiled CLI.
import { existsSync } from 'node:fs';
import { register } from 'node:module';

const sources = new URL('../src/cli/fedit.ts', import.meta.url);
if (existsSync(sources)) {
  // The workspace packages export their sources under the "source" condition (what
  // `node --conditions=source` selects for `npm run fedit`); a resolve hook adds it here.
  register(
    'data:text/javascript,export const resolve = (s, c, next) => next(s, { ...c, conditions: [...c.conditions, "source"] });',
  );
  const { register: registerTsx } = await import('tsx/esm/api');
  registerTsx();
  await import(sources.href);
} else {
  await import('../dist/cli/fedit.js');
}
