// "Choose…" (the system's file picker, in the desktop app) or a typed path (the development
// shell, where the page cannot open a picker): the model and the data are picked the same way.

import type { AppState } from '../../src/app/api.ts';
import { errorSlot, h, showError } from './dom.ts';
import type { Ui } from './ui.ts';

export interface PickerOptions {
  /** Names the control for ui.act, and prefixes its test ids: `${key}-choose`, -path, -use, -error. */
  key: string;
  chooseLabel: string;
  fieldLabel: string;
  fieldHint: string;
  useLabel: string;
  /** A textarea for several paths (one per line), else a one-line input. */
  multiline: boolean;
  placeholder: string;
  /** Shown while the backend reads what was picked (it can take a while). */
  busyNote: string;
  /** The picker (no argument), or the typed paths. */
  pick(paths?: string[]): Promise<AppState>;
}

export interface Picker {
  card: HTMLElement;
  /** Shows the paths in use, unless the person is typing there. */
  update(inUse: string[]): void;
}

export function picker(ui: Ui, o: PickerOptions): Picker {
  const field = o.multiline
    ? h('textarea', { id: `${o.key}-path`, rows: 2, wrap: 'off' })
    : h('input', { id: `${o.key}-path`, type: 'text' });
  for (const [name, value] of Object.entries({
    'data-testid': `${o.key}-path`,
    spellcheck: 'false',
    autocomplete: 'off',
    placeholder: o.placeholder,
  })) {
    field.setAttribute(name, value);
  }
  const typed = () =>
    field.value
      .split('\n')
      .map((p) => p.trim())
      .filter((p) => p !== '');
  let edited = false;
  field.addEventListener('input', () => {
    edited = true;
    ui.render();
  });

  const choose = h(
    'button',
    {
      class: 'primary',
      testid: `${o.key}-choose`,
      onclick: async () => {
        if (await ui.act(o.key, () => o.pick())) edited = false;
      },
    },
    o.chooseLabel,
  );
  const use = h(
    'button',
    {
      testid: `${o.key}-use`,
      onclick: async () => {
        if (await ui.act(o.key, () => o.pick(typed()))) edited = false;
      },
    },
    o.useLabel,
  );
  const error = errorSlot(`${o.key}-error`);
  const busyNote = h('p', { class: 'working', testid: `${o.key}-busy` }, o.busyNote);

  const card = h(
    'div',
    { class: 'card' },
    h('div', { class: 'actions first' }, choose),
    h('label', { for: `${o.key}-path` }, o.fieldLabel),
    h('p', { class: 'hint' }, o.fieldHint),
    h('div', { class: 'field-row' }, field, use),
    busyNote,
    error,
  );

  return {
    card,
    update(inUse) {
      const busy = ui.busy(o.key);
      choose.disabled = busy;
      use.disabled = busy || typed().length === 0;
      busyNote.hidden = !busy;
      if (!edited && document.activeElement !== field) field.value = inUse.join('\n');
      showError(error, ui.error(o.key));
    },
  };
}
