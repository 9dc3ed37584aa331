// Before joining: what a round costs on this computer, measured (a few real training steps of the
// invite's federation on the chosen model and data, src/app/cost.ts), not guessed.
//
// Test ids: cost-card, cost-hint (what is missing before it can be measured), cost-measure, cost
// (the figures), cost-error.

import type { AppState, CostEstimate } from '../../src/app/api.ts';
import { errorSlot, h, showError } from './dom.ts';
import type { Ui, View } from './ui.ts';
import { DEVICE_WORDS, count, duration, num } from './words.ts';

function megabytes(mb: number): string {
  if (mb < 1) return `${Math.max(1, Math.round(mb * 1000))} kB`;
  return mb < 10 ? `${mb.toFixed(1)} MB` : `${num(Math.round(mb))} MB`;
}

function costWords(c: CostEstimate): string[] {
  return [
    `A round takes ${c.minutesPerRound < 1 ? 'less than a minute' : duration(c.minutesPerRound * 60)} ` +
      `on the ${DEVICE_WORDS[c.device]} here: ${count(c.localSteps, 'step')} of ${c.secondsPerStep.toFixed(2)} s ` +
      `(the median of ${count(c.measuredSteps, 'step')} measured just now).`,
    `Each round you train in sends about ${megabytes(c.megabytesSentPerRound)}: one update of the adapter.`,
    `The federation's files take about ${megabytes(c.diskMegabytes)} of disk here, besides the base model.`,
  ];
}

/** `invite()`: the invite text the settings were read from. */
export function costView(ui: Ui, invite: () => string): View & { reset(): void } {
  let estimate: CostEstimate | undefined;
  const hint = h('p', { class: 'hint', testid: 'cost-hint' });
  const measure = h(
    'button',
    {
      testid: 'cost-measure',
      onclick: async () => {
        estimate = await ui.act('cost', () => ui.api.estimateCost(invite()));
        ui.render();
      },
    },
    'Measure it on this computer',
  );
  const figures = h('ul', { testid: 'cost' });
  const error = errorSlot('cost-error');
  const root = h(
    'div',
    { testid: 'cost-card' },
    h('h3', null, 'What it costs on this computer'),
    hint,
    h('div', { class: 'actions' }, measure),
    figures,
    error,
  );
  return {
    root,
    reset() {
      estimate = undefined;
      ui.clearError('cost');
    },
    update(app: AppState) {
      const ready = app.model?.ok === true && app.data !== undefined;
      hint.textContent = ready
        ? 'fedit times a few training steps of this federation on your model and data (nothing is sent).'
        : 'Choose the base model and your data (steps 2 and 3) to measure it; you can come back here to join.';
      const busy = ui.busy('cost');
      measure.disabled = busy || !ready;
      measure.textContent = busy ? 'Measuring…' : 'Measure it on this computer';
      figures.hidden = !estimate;
      figures.replaceChildren(...(estimate ? costWords(estimate).map((line) => h('li', null, line)) : []));
      showError(error, ui.error('cost'));
    },
  };
}
