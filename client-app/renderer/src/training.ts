// Taking part: what the computer is doing now, in words; how far along it is; the loss of this
// round; the controls (start, pause, resume) and the limits the participant sets; every round so far.

import type { AppSettings, AppState } from '../../src/app/api.ts';
import { formatLoss, lossChart } from './chart.ts';
import { errorSlot, h, showError } from './dom.ts';
import { type Ui, type View, memo } from './ui.ts';
import {
  DEVICE_WORDS,
  STATE_WORDS,
  duration,
  isRunning,
  num,
  progressWords,
  stateTone,
  statusSentence,
} from './words.ts';

type RoundHistoryEntry = AppState['history'][number];

/** Why training cannot start yet, in words; undefined when it can. */
export function startBlocked(app: AppState): string | undefined {
  if (!app.federation) return 'Join a federation first.';
  if (!app.model) return 'Choose the base model first.';
  if (!app.model.ok) return 'The chosen model cannot be used; see Base model.';
  if (!app.data) return 'Choose your data first.';
  if (app.data.report.usable === 0) return 'Your data has no usable examples; see Your data.';
  return undefined;
}

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

export function trainingView(ui: Ui): View {
  // Status: one big line, the round and a sentence, progress, the device, the controls.
  const stateDot = h('span', { class: 'state-dot' });
  const stateText = h('span', { testid: 'status-state' });
  const device = h('span', { class: 'chip', testid: 'device-in-use' });
  const round = h('span', { class: 'round', testid: 'status-round' });
  const message = h('span', { testid: 'status-message' });
  const progressLabel = h('span', { testid: 'progress-label' });
  const progressFacts = h('span', { class: 'muted', testid: 'progress-text' });
  const progress = h('progress', { testid: 'progress', max: 1, value: 0, 'aria-label': 'Progress' });
  const progressBlock = h(
    'div',
    { class: 'progress-block' },
    h('div', { class: 'progress-line' }, progressLabel, progressFacts),
    progress,
  );

  const control = (key: 'start' | 'pause' | 'resume', label: string, cls: string) =>
    h(
      'button',
      {
        class: cls,
        testid: key,
        onclick: () => void ui.act('training', () => ui.api[key]()),
      },
      label,
    );
  const start = control('start', 'Start', 'primary large');
  const pause = control('pause', 'Pause', 'large');
  const resume = control('resume', 'Resume', 'primary large');
  const blocked = h('p', { class: 'muted', testid: 'start-blocked' });
  const trainingError = errorSlot('training-error');

  const statusCard = h(
    'div',
    { class: 'card status-card' },
    h('div', { class: 'status-top' }, h('p', { class: 'state' }, stateDot, stateText), device),
    h('p', { class: 'status-sub' }, round, message),
    progressBlock,
    h('div', { class: 'actions' }, start, pause, resume, blocked),
    trainingError,
  );

  // The loss chart of the current round.
  const chartBox = h('div', { class: 'chart-box', testid: 'loss-chart' });
  const chartTitle = h('h2', null, 'Loss');
  const chartNote = h('p', { class: 'muted small', testid: 'loss-note' });
  // The loss says how far the model's answers are from your examples, one value per training step.
  // The Rounds table's "average loss" is the mean over all of a round's steps (what the round
  // reports), so it differs from the last step's value shown here.
  const renderChart = memo(({ losses, round }: { losses: number[]; round?: number }) => {
    chartBox.replaceChildren(lossChart(losses));
    chartTitle.textContent = round === undefined ? 'Loss' : `Loss in round ${num(round)}`;
    chartNote.textContent = losses.length
      ? `Last step: ${formatLoss(losses[losses.length - 1])}; average of the ${num(losses.length)} steps: ` +
        `${formatLoss(losses.reduce((a, b) => a + b, 0) / losses.length)} (the Rounds table shows each round's average). ` +
        'Loss measures how far the model is from your examples: lower is better.'
      : 'The chart fills in while your computer trains in a round. ' +
        'Loss measures how far the model is from your examples: lower is better.';
  });
  const chartCard = h('div', { class: 'card' }, chartTitle, chartBox, chartNote);

  // Settings, saved as soon as they change.
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
    h('option', { value: 'webgpu' }, 'GPU (WebGPU)'),
  );
  const gpuNote = h('p', { class: 'hint' });
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
  const checkbox = (id: string, key: 'onlyWhenPluggedIn' | 'onlyWhenIdle', text: string) => {
    const box = h('input', {
      id,
      testid: id,
      type: 'checkbox',
      onchange: () => save({ [key]: box.checked }),
    });
    return { box, row: h('label', { class: 'check', for: id }, box, text) };
  };
  const pluggedIn = checkbox('setting-plugged-in', 'onlyWhenPluggedIn', 'Only when plugged in');
  const idle = checkbox('setting-idle', 'onlyWhenIdle', 'Only when the computer is idle');
  const settingsError = errorSlot('settings-error');
  const settingsCard = h(
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

  // Every round so far.
  const historyBody = h('tbody');
  const renderHistory = memo((history: RoundHistoryEntry[]) =>
    historyBody.replaceChildren(...historyRows(history)),
  );
  const historyCard = h(
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

  // The logs: the folder (opened by the system), or their end shown here.
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
  const logsCard = h(
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

  const root = h(
    'section',
    { class: 'page', testid: 'section-training' },
    h(
      'header',
      { class: 'page-head' },
      h('h1', null, 'Training'),
      h(
        'p',
        { class: 'lead' },
        'In each round the coordinator picks some participants. If yours is picked, it downloads the ' +
          'shared adapter, trains it on your data, and sends back the encrypted update.',
      ),
    ),
    statusCard,
    h('div', { class: 'grid-2' }, chartCard, settingsCard),
    historyCard,
    logsCard,
  );

  return {
    root,
    update(app) {
      const { status } = app;
      statusCard.dataset.tone = stateTone(status.state);
      stateText.textContent = STATE_WORDS[status.state];
      device.textContent = `Runs on ${DEVICE_WORDS[status.device]}`;
      round.textContent =
        status.round === undefined
          ? ''
          : `Round ${num(status.round)}${app.federation ? ` of ${num(app.federation.rounds)}` : ''}`;
      round.hidden = status.round === undefined;
      message.textContent = statusSentence(status);

      const p = status.progress;
      progressBlock.hidden = !p;
      if (p) {
        progressLabel.textContent = progressWords(p);
        progress.max = Math.max(1, p.total);
        progress.value = Math.min(p.done, p.total);
        progressFacts.textContent = [
          p.etaSeconds === undefined ? '' : `${duration(p.etaSeconds)} left`,
          p.tokensPerSecond === undefined ? '' : `${num(Math.round(p.tokensPerSecond))} tokens/s`,
        ]
          .filter(Boolean)
          .join(' · ');
      }

      const why = startBlocked(app);
      const busy = ui.busy('training');
      const { state } = status;
      // Held back by a setting (power, idle): resuming is the setting's business; pausing still works.
      const heldByLimit = state === 'paused' && (status.pausedBy === 'power' || status.pausedBy === 'idle');
      start.hidden = !['idle', 'stopped', 'error'].includes(state);
      pause.hidden = !(isRunning(state) || heldByLimit);
      resume.hidden = state !== 'paused' || heldByLimit;
      start.disabled = busy || why !== undefined;
      pause.disabled = busy;
      resume.disabled = busy;
      blocked.textContent = start.hidden ? '' : (why ?? '');
      blocked.hidden = !blocked.textContent;
      showError(trainingError, ui.error('training'));

      renderChart({ losses: status.losses, round: status.losses.length ? status.round : undefined });

      const s = app.settings;
      if (document.activeElement !== deviceSelect) deviceSelect.value = s.device;
      deviceSelect.querySelector<HTMLOptionElement>('option[value="webgpu"]')!.disabled =
        !app.gpuAvailable && s.device !== 'webgpu';
      gpuNote.textContent = app.gpuAvailable
        ? 'This computer has a GPU that fedit can use; Automatic picks it.'
        : 'No GPU that fedit can use was found on this computer; Automatic uses the CPU.';
      cpuThreads = app.cpuThreads;
      if (document.activeElement !== threads && threadsError.hidden) threads.value = String(s.maxThreads);
      threads.max = String(app.cpuThreads);
      threadsHint.textContent =
        `This computer has ${num(app.cpuThreads)}. Fewer leaves more for your other work; ` +
        `0 means all of them.`;
      pluggedIn.box.checked = s.onlyWhenPluggedIn;
      idle.box.checked = s.onlyWhenIdle;
      showError(settingsError, ui.error('settings'));

      renderHistory(app.history);
      logsPath.textContent = app.logsDir;
      showLogs.textContent = logsText.hidden ? 'Show logs' : 'Hide logs';
      showLogs.disabled = openLogs.disabled = ui.busy('logs');
      showError(logsError, ui.error('logs'));
    },
  };
}

export function trainingHint(app: AppState): string {
  return STATE_WORDS[app.status.state];
}
