// The Training section's settings: where to compute, how many CPU threads, and the limits (only
// when plugged in, only when idle). Each is saved as soon as it changes.

import type { AppSettings, AppState } from '../../src/app/api.ts';
import { errorSlot, h, showError } from './dom.ts';
import type { Ui, View } from './ui.ts';
import { num } from './words.ts';

export function settingsCard(ui: Ui): View {
  const save = (patch: Partial<AppSettings>) => void ui.act('settings', () => ui.api.updateSettings(patch));
  const deviceSelect = h(
    'select',
    {
      id: 'setting-device',
      testid: 'setting-device',
      onchange: () => save({ device: deviceSelect.value as AppSettings['device'] }),
    },
    h('option', { value: 'auto' }, 'Automatic'),
    h('option', { value: 'cpu' }, 'CPU'),
    h('option', { value: 'webgpu' }, 'WebGPU'),
  );
  const gpuNote = h('p', { class: 'hint', testid: 'device-why' });
  const threadsHint = h('p', { class: 'hint' });
  const threadsError = errorSlot('threads-error');
  /** The largest thread count this computer allows (from the state; 0 until it is known). */
  let cpuThreads = 0;
  const threads = h('input', {
    id: 'setting-threads',
    testid: 'setting-threads',
    type: 'number',
    min: 0,
    step: 1,
    inputmode: 'numeric',
    onchange: () => {
      // Checked here so a mistyped number gets a plain answer instead of the backend's refusal.
      const n = Number(threads.value);
      const ok = threads.value.trim() !== '' && Number.isInteger(n) && n >= 0 && n <= cpuThreads;
      threads.setAttribute('aria-invalid', String(!ok));
      showError(
        threadsError,
        ok
          ? undefined
          : `Enter a whole number from 0 to ${num(cpuThreads)}: this computer has ${num(cpuThreads)} CPU threads, and 0 means all of them.`,
      );
      if (ok) save({ maxThreads: n });
    },
  });
  const pluggedIn = checkbox('setting-plugged-in', 'Only when plugged in', (on) =>
    save({ onlyWhenPluggedIn: on }),
  );
  const idle = checkbox('setting-idle', 'Only when the computer is idle', (on) => save({ onlyWhenIdle: on }));
  const settingsError = errorSlot('settings-error');
  const root = h(
    'div',
    { class: 'card settings' },
    h('h2', null, 'Settings'),
    h('label', { for: 'setting-device' }, 'Where to compute'),
    deviceSelect,
    gpuNote,
    h('label', { for: 'setting-threads' }, 'Most CPU threads to use'),
    threadsHint,
    threads,
    threadsError,
    pluggedIn.row,
    idle.row,
    settingsError,
  );

  return {
    root,
    update(app) {
      const s = app.settings;
      if (document.activeElement !== deviceSelect) deviceSelect.value = s.device;
      deviceSelect.querySelector<HTMLOptionElement>('option[value="webgpu"]')!.disabled =
        !app.gpuAvailable && s.device !== 'webgpu';
      gpuNote.textContent = deviceNote(app);
      cpuThreads = app.cpuThreads;
      if (document.activeElement !== threads && threadsError.hidden) threads.value = String(s.maxThreads);
      threads.max = String(app.cpuThreads);
      threadsHint.textContent =
        `This computer has ${num(app.cpuThreads)}. Fewer leaves more for your other work; ` +
        `0 means all of them.`;
      pluggedIn.box.checked = s.onlyWhenPluggedIn;
      idle.box.checked = s.onlyWhenIdle;
      showError(settingsError, ui.error('settings'));
    },
  };
}

/** A labelled checkbox whose every change goes to `changed`. */
function checkbox(id: string, text: string, changed: (on: boolean) => void) {
  const box = h('input', { id, testid: id, type: 'checkbox', onchange: () => changed(box.checked) });
  return { box, row: h('label', { class: 'check', for: id }, box, text) };
}

/** What "Where to compute" can use here, and what Automatic chose and why (from measured steps). */
function deviceNote(app: AppState): string {
  if (app.settings.device === 'auto' && app.deviceChoice) return app.deviceChoice.why;
  if (!app.gpuAvailable) return 'WebGPU cannot start on this computer; Automatic uses the CPU.';
  const what = app.gpuSoftware
    ? 'WebGPU starts here on a software rasteriser, which runs on the CPU (it is not a GPU).'
    : 'WebGPU starts on this computer.';
  return `${what} Automatic times a few training steps on WebGPU and on the CPU and uses the faster.`;
}
