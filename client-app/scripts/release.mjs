#!/usr/bin/env node
// `npm run release -w client-app [-- --arch x64|arm64]`: the desktop app's installers for this
// operating system (electron-builder.config.mjs says which), written to client-app/app-release/.
//
//   1. bundles the app into app-dist/ (scripts/build-app.mjs)
//   2. stages it in a temporary folder outside the repository, with its production
//      node_modules installed there by npm (only the native packages the bundles leave out;
//      install scripts off, so onnxruntime-node downloads no CUDA libraries), and drops the
//      onnxruntime binaries of other platforms
//   3. runs electron-builder on that folder
//
// Needs the network (npm registry; electron-builder downloads Electron and its packaging tools),
// and for macOS installers a Mac, for Windows installers Windows (or wine). Never part of npm test.

import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import builder from 'electron-builder';
import config from '../electron-builder.config.mjs';
import { buildApp } from './build-app.mjs';

const { build, Arch, Platform } = builder;

const { values } = parseArgs({
  options: {
    arch: { type: 'string', default: process.arch },
    keep: { type: 'boolean', default: false },
  },
});
const arch = values.arch;
if (!['x64', 'arm64'].includes(arch)) {
  console.error(`release: --arch must be x64 or arm64, got ${arch}`);
  process.exit(1);
}
const platform = process.platform;

console.log(`release: bundling the app`);
const appDist = join(dirname(fileURLToPath(import.meta.url)), '..', 'app-dist');
await buildApp({ outDir: appDist });

const stage = await mkdtemp(join(tmpdir(), 'fedit-release-'));
try {
  const appDir = join(stage, 'app');
  await cp(appDist, appDir, { recursive: true });

  console.log(`release: installing the native dependencies for ${platform}-${arch} in ${appDir}`);
  npm(appDir, [
    'install',
    '--omit=dev',
    '--ignore-scripts',
    '--no-package-lock',
    '--no-audit',
    '--no-fund',
    `--os=${platform}`,
    `--cpu=${arch}`,
  ]);
  await keepOnlyOnnxRuntimeFor(appDir, platform, arch);

  console.log(`release: packaging with electron-builder`);
  const artifacts = await build({
    projectDir: appDir,
    config,
    targets: Platform.current().createTarget(null, Arch[arch]),
    publish: 'never',
  });
  console.log('release: done');
  for (const artifact of artifacts) console.log(`  ${artifact}`);
} finally {
  if (values.keep) console.log(`release: the staged app stays in ${stage}`);
  else await rm(stage, { recursive: true, force: true });
}

function npm(cwd, args) {
  // Under `npm run`, npm says where it is; otherwise the one on PATH.
  const execPath = process.env.npm_execpath;
  const [command, commandArgs] = execPath?.endsWith('.js')
    ? [process.execPath, [execPath, ...args]]
    : [process.platform === 'win32' ? 'npm.cmd' : 'npm', args];
  const result = spawnSync(command, commandArgs, {
    cwd,
    stdio: 'inherit',
    shell: process.platform === 'win32' && command === 'npm.cmd',
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
  });
  if (result.status !== 0) throw new Error(`npm ${args.join(' ')} failed in ${cwd}`);
}

/** onnxruntime-node ships every platform's binaries (about 290 MB); the app needs one. */
async function keepOnlyOnnxRuntimeFor(appDir, os, cpu) {
  const bin = join(appDir, 'node_modules/onnxruntime-node/bin/napi-v6');
  let found = false;
  for (const osDir of await readdir(bin)) {
    for (const cpuDir of await readdir(join(bin, osDir))) {
      if (osDir === os && cpuDir === cpu) found = true;
      else await rm(join(bin, osDir, cpuDir), { recursive: true, force: true });
    }
  }
  if (!found) throw new Error(`onnxruntime-node has no binaries for ${os}-${cpu}: fedit cannot run there`);
}
