// "Save adapter…": the federation's adapter (its final one once it has ended) as a PEFT adapter
// folder with its model card, where the person chooses: the system's folder picker in the app, or
// a typed path (the development shell, where the page cannot open a picker).
//
// Test ids: adapter-card, adapter-ended (the federation's end, with where its adapter is kept),
// adapter-choose (the picker), adapter-path, adapter-use, adapter-error, adapter-saved.

import type { AppState, SavedAdapter } from '../../src/app/api.ts';
import { errorSlot, h, showError } from './dom.ts';
import type { Ui, View } from './ui.ts';
import { count, num } from './words.ts';

/** Whether there is an adapter to save: a round of the federation aggregated, or it has ended. */
export function hasAdapter(app: AppState): boolean {
  return app.ended !== undefined || app.history.some((e) => e.outcome === 'aggregated');
}

export function adapterSaveView(ui: Ui): View {
  let saved: SavedAdapter | undefined;
  const save = async (folder?: string) => {
    const answer = await ui.act('adapter', () => ui.api.saveAdapter(folder));
    if (answer) saved = answer;
    ui.render();
  };
  const field = h('input', {
    id: 'adapter-path',
    testid: 'adapter-path',
    type: 'text',
    spellcheck: false,
    autocomplete: 'off',
    placeholder: '/home/you/fedit-adapter',
    oninput: () => ui.render(),
  });
  const choose = h(
    'button',
    { class: 'primary', testid: 'adapter-choose', onclick: () => void save() },
    'Save adapter…',
  );
  const use = h(
    'button',
    { testid: 'adapter-use', onclick: () => void save(field.value.trim()) },
    'Save in this folder',
  );
  const ended = h('p', { testid: 'adapter-ended' });
  const done = h('p', { class: 'ok', testid: 'adapter-saved', role: 'status' });
  const error = errorSlot('adapter-error');
  const root = h(
    'div',
    { class: 'card', testid: 'adapter-card' },
    h('h2', null, "The federation's adapter"),
    ended,
    h(
      'p',
      { class: 'muted' },
      'Save it as an adapter folder (PEFT: adapter_config.json, the weights and a model card that ' +
        'says how to verify it) to use it with the base model in fedit or in other tools.',
    ),
    h('div', { class: 'actions first' }, choose),
    h('label', { for: 'adapter-path' }, "Or type a new or empty folder's path"),
    h('div', { class: 'field-row' }, field, use),
    done,
    error,
  );
  return {
    root,
    update(app) {
      root.hidden = !hasAdapter(app);
      ended.textContent = app.ended
        ? `The federation has ended after ${count(app.ended.rounds, 'round')}: this is its final adapter.`
        : 'The federation is still running: this is the newest adapter this computer has.';
      const busy = ui.busy('adapter');
      choose.disabled = busy;
      use.disabled = busy || field.value.trim() === '';
      done.hidden = !saved;
      done.textContent = saved
        ? `Saved round ${num(saved.round)}'s ${saved.final ? 'final ' : ''}adapter in ${saved.folder} (${saved.files.join(', ')}).`
        : '';
      showError(error, ui.error('adapter'));
    },
  };
}
