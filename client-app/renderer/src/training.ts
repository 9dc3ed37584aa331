// Taking part: what the computer is doing now, in words; how far along it is; what the federation
// learned across rounds (./chart.ts); the controls (start, pause, resume) and the limits the
// participant sets (./training-settings.ts); every round so far and the logs (./training-record.ts).

import type { AppState } from '../../src/app/api.ts';
import { adapterSaveView } from './adapter-save.ts';
import { formatLoss, learningCurve, type CurvePoint } from './chart.ts';
import { errorSlot, h, showError } from './dom.ts';
import { roundWaitSentence } from './round-wait.ts';
import { historyCard, logsCard } from './training-record.ts';
import { settingsCard } from './training-settings.ts';
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

/** Why training cannot start yet, in words; undefined when it can. */
export function startBlocked(app: AppState): string | undefined {
  if (!app.federation) return 'Join a federation first.';
  if (!app.model) return 'Choose the base model first.';
  if (!app.model.ok) return 'The chosen model cannot be used; see Base model.';
  if (!app.data) return 'Choose your data first.';
  if (app.data.report.usable === 0) return 'Your data has no usable examples; see Your data.';
  return undefined;
}

export function trainingView(ui: Ui): View {
  const status = statusCard(ui);
  const chart = chartCard();
  const settings = settingsCard(ui);
  const history = historyCard();
  const logs = logsCard(ui);
  const adapter = adapterSaveView(ui);
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
    status.root,
    adapter.root,
    h('div', { class: 'grid-2' }, chart.root, settings.root),
    history.root,
    logs.root,
  );

  return {
    root,
    update(app) {
      for (const part of [status, adapter, chart, settings, history, logs]) part.update(app);
    },
  };
}

/** One big line, the round and a sentence, progress, the device, the controls. */
function statusCard(ui: Ui): View {
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

  const root = h(
    'div',
    { class: 'card status-card' },
    h('div', { class: 'status-top' }, h('p', { class: 'state' }, stateDot, stateText), device),
    h('p', { class: 'status-sub' }, round, message),
    progressBlock,
    h('div', { class: 'actions' }, start, pause, resume, blocked),
    trainingError,
  );

  return {
    root,
    update(app) {
      const { status } = app;
      root.dataset.tone = stateTone(status.state);
      stateText.textContent = STATE_WORDS[status.state];
      device.textContent = `Runs on ${status.device === 'webgpu' && app.gpuSoftware ? 'WebGPU (software, on the CPU)' : DEVICE_WORDS[status.device]}`;
      round.textContent =
        status.round === undefined
          ? ''
          : `Round ${num(status.round)}${app.federation ? ` of ${num(app.federation.rounds)}` : ''}`;
      round.hidden = status.round === undefined;
      message.textContent = [statusSentence(status), roundWaitSentence(app)].filter(Boolean).join(' ');

      // Paused: nothing runs, so no progress bar and no time left (the reducer drops it too).
      const p = status.state === 'paused' ? undefined : status.progress;
      progressBlock.hidden = !p;
      if (p) {
        progressLabel.textContent = progressWords(p);
        progress.max = Math.max(1, p.total);
        progress.value = Math.min(p.done, p.total);
        progressFacts.textContent = progressFactsText(p);
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
    },
  };
}

/**
 * What the federation learned, across rounds: the shared adapter on your own held-out examples
 * and the federation's mean (chart.ts), from the rounds' history.
 */
function chartCard(): View {
  const chartBox = h('div', { class: 'chart-box', testid: 'loss-chart' });
  const legend = h(
    'p',
    { class: 'chart-legend small' },
    h('span', { class: 'key yours' }, 'The shared adapter on your held-out examples'),
    h('span', { class: 'key federation' }, "The federation's mean over everyone's held-out examples"),
  );
  const chartNote = h('p', { class: 'muted small', testid: 'loss-note' });
  const renderChart = memo((points: CurvePoint[]) => {
    chartBox.replaceChildren(learningCurve(points));
    legend.hidden = points.length === 0;
    const last = points.at(-1);
    chartNote.textContent = last
      ? `Round ${num(last.round)}: ` +
        [
          last.yours !== undefined && `yours ${formatLoss(last.yours)}`,
          last.federation !== undefined && `federation ${formatLoss(last.federation)}`,
        ]
          .filter(Boolean)
          .join(', ') +
        '. Each round measures the shared adapter it starts from on examples set aside from your data, ' +
        'which are never trained on. Lower is better.'
      : 'Fills in from the first round you take part in: each round, your computer measures the shared ' +
        'adapter on a few examples set aside from your data (never trained on). Lower is better.';
  });
  const root = h(
    'div',
    { class: 'card', testid: 'learning-curve' },
    h('h2', null, 'What the federation learned'),
    chartBox,
    legend,
    chartNote,
  );

  return {
    root,
    update({ history }) {
      renderChart(curvePoints(history));
    },
  };
}

/** The rounds that have a figure, in order. */
export function curvePoints(history: AppState['history']): CurvePoint[] {
  return history
    .map((entry) => ({
      round: entry.round,
      ...(entry.heldOutLoss !== undefined && { yours: entry.heldOutLoss }),
      ...(entry.federationHeldOutLoss !== undefined && { federation: entry.federationHeldOutLoss }),
    }))
    .filter((p) => p.yours !== undefined || p.federation !== undefined)
    .sort((a, b) => a.round - b.round);
}

/** "2 minutes left · 1,234 tokens/s", from what the progress says. */
function progressFactsText(p: NonNullable<AppState['status']['progress']>): string {
  const eta = p.etaSeconds === undefined ? '' : `${duration(p.etaSeconds)} left`;
  const speed = p.tokensPerSecond === undefined ? '' : `${num(Math.round(p.tokensPerSecond))} tokens/s`;
  return [eta, speed].filter(Boolean).join(' · ');
}

export function trainingHint(app: AppState): string {
  return STATE_WORDS[app.status.state];
}
