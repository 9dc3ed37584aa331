// The Training section's record: every round so far, and the app's logs (the folder, opened by
// the system, or their end shown here).

import type { AppState } from '../../src/app/api.ts';
import { formatLoss } from './chart.ts';
import { errorSlot, h, showError } from './dom.ts';
import { type Ui, type View, memo } from './ui.ts';
import { num } from './words.ts';

type RoundHistoryEntry = AppState['history'][number];

function outcome(entry: RoundHistoryEntry): { text: string; tone: string } {
  if (entry.error) return { text: `Not counted: ${entry.error}`, tone: 'problem' };
  if (entry.outcome === 'aggregated') {
    return {
      text:
        entry.updates === undefined
          ? 'Combined'
          : `Combined from ${num(entry.updates)} update${entry.updates === 1 ? '' : 's'}`,
      tone: 'ok',
    };
  }
  if (entry.outcome === 'aborted') return { text: 'Cancelled (too few updates)', tone: 'warn' };
  return { text: 'In progress', tone: 'muted' };
}

function historyRows(history: RoundHistoryEntry[]): HTMLElement[] {
  if (!history.length) {
    return [h('tr', null, h('td', { colspan: 6, class: 'empty' }, 'No rounds yet.'))];
  }
  return [...history]
    .sort((a, b) => b.round - a.round)
    .map((entry) => {
      const end = outcome(entry);
      const dash = () => h('span', { class: 'muted' }, '–');
      return h(
        'tr',
        { 'data-round': entry.round },
        h('td', { class: 'num' }, num(entry.round)),
        h('td', null, entry.selected ? 'Yes' : h('span', { class: 'muted' }, 'Not this round')),
        h('td', { class: 'num' }, entry.trainLoss === undefined ? dash() : formatLoss(entry.trainLoss)),
        h('td', { class: 'num' }, entry.examples === undefined ? dash() : num(entry.examples)),
        h('td', null, entry.selected ? (entry.uploaded ? 'Yes' : 'No') : dash()),
        h('td', { class: end.tone }, end.text),
      );
    });
}

/** Every round so far, newest first. */
export function historyCard(): View {
  const historyBody = h('tbody');
  const renderHistory = memo((history: RoundHistoryEntry[]) =>
    historyBody.replaceChildren(...historyRows(history)),
  );
  const root = h(
    'div',
    { class: 'card' },
    h('h2', null, 'Rounds'),
    h(
      'table',
      { class: 'table history', testid: 'history' },
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          h('th', { class: 'num' }, 'Round'),
          h('th', null, 'Picked'),
          h('th', { class: 'num' }, 'Average loss'),
          h('th', { class: 'num' }, 'Examples'),
          h('th', null, 'Update sent'),
          h('th', null, 'Outcome'),
        ),
      ),
      historyBody,
    ),
  );

  return {
    root,
    update(app) {
      renderHistory(app.history);
    },
  };
}

/** The logs: where they are kept, their end shown here, or the folder opened. */
export function logsCard(ui: Ui): View {
  const logsPath = h('code', { class: 'path', testid: 'logs-dir' });
  const logsText = h('pre', { class: 'logs-text', testid: 'logs-text' });
  logsText.hidden = true;
  const showLogs = h(
    'button',
    {
      testid: 'show-logs',
      onclick: async () => {
        if (!logsText.hidden) {
          logsText.hidden = true;
          ui.render();
          return;
        }
        const text = await ui.act('logs', () => ui.api.readLogs());
        if (text !== undefined) {
          logsText.textContent = text || 'The logs are empty.';
          logsText.hidden = false;
          logsText.scrollTop = logsText.scrollHeight;
        }
        ui.render();
      },
    },
    'Show logs',
  );
  const openLogs = h(
    'button',
    { testid: 'open-logs', onclick: () => void ui.act('logs', () => ui.api.openLogs()) },
    'Open logs folder',
  );
  const logsError = errorSlot('logs-error');
  const root = h(
    'div',
    { class: 'card' },
    h(
      'div',
      { class: 'logs' },
      h('div', null, h('h2', null, 'Logs'), h('p', { class: 'muted small' }, 'Kept in ', logsPath)),
      h('div', { class: 'actions' }, showLogs, openLogs),
    ),
    logsText,
    logsError,
  );

  return {
    root,
    update(app) {
      logsPath.textContent = app.logsDir;
      showLogs.textContent = logsText.hidden ? 'Show logs' : 'Hide logs';
      showLogs.disabled = openLogs.disabled = ui.busy('logs');
      showError(logsError, ui.error('logs'));
    },
  };
}
