// The fedit desktop app's page. It talks to the world only through `window.fedit` (FeditAppApi,
// src/app/api.ts): Electron's preload provides it, or the development shell over a WebSocket.
// It renders from AppState, kept current by the backend's events: snapshots ('state', 'status')
// and the participant's own events, folded into the live status with the backend's reducer
// (src/app/live-status.ts, pure). It holds no state of its own beyond what people type and which
// section they look at.
//
// Test ids (data-testid), stable for the browser tests. One section shows at a time: click its
// nav-* button first (or open the page with #federation, #model, #data, #training or #chat).
// Buttons that do not apply in the current state are hidden (start/pause/resume) or disabled.
//
//   page         loading, app-error (the backend could not be reached)
//   first run    welcome, home-dir, create-identity, create-identity-error
//   navigation   nav-federation, nav-model, nav-data, nav-training, nav-chat (each with a
//                nav-<id>-hint line; data-state="done|todo|busy|problem" on the button), identity,
//                identity-key-note (the key is not sealed by a keychain),
//                next-federation, next-model, next-data ("Continue" once a step is done)
//   federation   section-federation, display-name, display-name-error, invite-input, invite-check,
//                invite-error; before joining: invite-settings (name: invite-name), join,
//                invite-cancel, join-error; in both summaries: coordinator-fingerprint, learning, privacy;
//                once joined: federation-summary (name: federation-name), leave, then
//                leave-confirm / leave-cancel, leave-error
//   model        section-model, model-choose (system picker), model-path, model-use, model-busy,
//                model-error, model-status (class ok | problem | neutral; model-problem,
//                model-identity inside)
//   data         section-data, data-choose, data-path (one path per line), data-use, data-busy,
//                data-error, data-report containing data-counts (data-records, data-usable,
//                data-skipped-count, data-duplicate-count), data-unusable, data-files,
//                data-histogram, data-skipped, data-duplicates, data-empty-fields,
//                data-categories, data-previews (trained text inside <mark>; data-no-previews
//                says why there is none)
//   training     section-training, status-state, status-round, status-message, device-in-use,
//                progress (<progress>), progress-label, progress-text (ETA · tokens/s), start,
//                pause, resume, start-blocked, training-error, loss-chart, setting-device,
//                setting-threads, setting-plugged-in, setting-idle, settings-error, history
//                (a table; rows carry data-round), logs-dir, show-logs (toggles logs-text, the
//                log's end from readLogs), open-logs, logs-error
//   try it       section-chat, chat-unavailable, chat-log, chat-input, chat-send, chat-reply (the
//                newest reply only; class "streaming" until done; an error shows inside it)

import type { AppEvent, AppState, FeditAppApi } from '../../src/app/api.ts';
import { reduceLiveStatus } from '../../src/app/live-status.ts';
import { chatBlocked, chatHint, chatView } from './chat.ts';
import { dataHint, dataView } from './data.ts';
import { h, messageOf } from './dom.ts';
import { federationHint, federationView } from './federation.ts';
import { modelHint, modelView } from './model.ts';
import { trainingHint, trainingView } from './training.ts';
import type { SectionId, Ui, View } from './ui.ts';
import { welcomeView } from './welcome.ts';
import { grouped, isRunning } from './words.ts';

declare global {
  interface Window {
    fedit?: FeditAppApi;
  }
}

type StepState = 'done' | 'todo' | 'busy' | 'problem';

/** How long progress waits to be drawn, so that fast steps are drawn together. */
const PROGRESS_RENDER_MS = 100;

interface Section {
  id: SectionId;
  title: string;
  view: View;
  hint(app: AppState): string;
  step(app: AppState): StepState;
}

const isAppState = (x: unknown): x is AppState =>
  typeof x === 'object' && x !== null && 'status' in x && 'settings' in x && 'history' in x;

/** The section to open first: the first step not done yet. */
function firstOpenStep(app: AppState): SectionId {
  if (!app.federation) return 'federation';
  if (!app.model?.ok) return 'model';
  if (!app.data?.report.usable) return 'data';
  return 'training';
}

function boot(api: FeditAppApi, mount: HTMLElement): void {
  let app: AppState | undefined;
  let current: SectionId | undefined;
  const ui = controls(api, {
    render,
    go,
    answered: (state) => {
      app = state;
    },
  });

  const welcome = welcomeView(ui);
  const chat = chatView(ui);
  const sections = sectionsOf(ui, chat);
  const layout = pageLayout(sections, go);
  const loading = h('p', { class: 'loading', testid: 'loading' }, 'Starting…');
  const fatal = h('div', { class: 'status-box problem fatal', testid: 'app-error', role: 'alert' });
  fatal.hidden = true;
  welcome.root.hidden = true;
  layout.root.hidden = true;
  mount.replaceChildren(loading, fatal, welcome.root, layout.root);

  function go(id: SectionId): void {
    current = id;
    window.history.replaceState(null, '', `#${id}`);
    render();
    layout.main.scrollTo({ top: 0 });
  }

  function render(): void {
    loading.hidden = app !== undefined || !fatal.hidden;
    if (!app) return;
    const firstRun = !app.identity;
    welcome.root.hidden = !firstRun;
    layout.root.hidden = firstRun;
    if (firstRun) return welcome.update(app);
    const fromHash = location.hash.slice(1);
    current ??= sections.some((s) => s.id === fromHash) ? (fromHash as SectionId) : firstOpenStep(app);
    layout.update(app, current);
  }

  function showFatal(message: string): void {
    fatal.replaceChildren(
      h('p', { class: 'box-title' }, 'fedit cannot reach its background service'),
      h('p', null, message),
      h('p', null, 'Close fedit and open it again. If this keeps happening, the logs say more.'),
    );
    fatal.hidden = false;
    render();
  }

  addEventListener('hashchange', () => {
    const id = location.hash.slice(1);
    if (sections.some((s) => s.id === id) && id !== current) go(id as SectionId);
  });

  // Training steps on small models come faster than a page needs to redraw: progress within
  // PROGRESS_RENDER_MS is drawn once (a change of state is drawn at once).
  let renderTimer: ReturnType<typeof setTimeout> | undefined;
  const draw = { now: render, soon: () => (renderTimer ??= setTimeout(drawLater, PROGRESS_RENDER_MS)) };
  function drawLater(): void {
    renderTimer = undefined;
    render();
  }

  let gotState = false;
  api.onEvent((event) => {
    if (event.type === 'chat') return chat.onChat(event);
    gotState ||= event.type === 'state';
    const next = afterEvent(app, event);
    app = next.app;
    if (next.draw) draw[next.draw]();
  });
  api.getState().then(
    (state) => {
      // A 'state' event that came in meanwhile is newer than this answer.
      if (!gotState) app = state;
      render();
    },
    (error: unknown) => showFatal(messageOf(error)),
  );
}

/**
 * What the views get (./ui.ts): the API, and each control's busy flag and last error around the
 * calls it makes. An AppState a call answers becomes the page's state (`answered`).
 */
function controls(
  api: FeditAppApi,
  page: { render(): void; go(id: SectionId): void; answered(state: AppState): void },
): Ui {
  const busy = new Set<string>();
  const errors = new Map<string, string>();
  const { render } = page;
  return {
    api,
    busy: (key) => busy.has(key),
    error: (key) => errors.get(key),
    clearError: (key) => void errors.delete(key),
    render,
    go: (id) => page.go(id),
    async act(key, call) {
      busy.add(key);
      errors.delete(key);
      render();
      try {
        const result = await call();
        if (isAppState(result)) page.answered(result);
        return result;
      } catch (error) {
        errors.set(key, messageOf(error));
        return undefined;
      } finally {
        busy.delete(key);
        render();
      }
    },
  };
}

/**
 * The page's state after one of the backend's events, and how soon to draw it. The participant's
 * own events are folded into the live status as the backend folded them (src/app/live-status.ts).
 */
function afterEvent(
  app: AppState | undefined,
  event: Exclude<AppEvent, { type: 'chat' }>,
): { app: AppState | undefined; draw?: 'now' | 'soon' } {
  if (event.type === 'state') return { app: event.state, draw: 'now' };
  if (!app) return { app };
  if (event.type === 'status') return { app: { ...app, status: event.status }, draw: 'now' };
  const status = reduceLiveStatus(app.status, event.event);
  if (status === app.status) return { app };
  return { app: { ...app, status }, draw: status.state === app.status.state ? 'soon' : 'now' };
}

/** The five steps of the page, in order. */
function sectionsOf(ui: Ui, chat: View): Section[] {
  return [
    {
      id: 'federation',
      title: 'Federation',
      view: federationView(ui),
      hint: federationHint,
      step: (a) => (a.federation ? 'done' : 'todo'),
    },
    {
      id: 'model',
      title: 'Base model',
      view: modelView(ui),
      hint: modelHint,
      step: (a) => (!a.model ? 'todo' : a.model.ok ? 'done' : 'problem'),
    },
    {
      id: 'data',
      title: 'Your data',
      view: dataView(ui),
      hint: dataHint,
      step: (a) => (!a.data ? 'todo' : a.data.report.usable ? 'done' : 'problem'),
    },
    {
      id: 'training',
      title: 'Training',
      view: trainingView(ui),
      hint: trainingHint,
      step: (a) =>
        ['error', 'crashed'].includes(a.status.state)
          ? 'problem'
          : isRunning(a.status.state)
            ? 'busy'
            : a.status.state === 'finished'
              ? 'done'
              : 'todo',
    },
    {
      id: 'chat',
      title: 'Try it',
      view: chat,
      hint: chatHint,
      step: (a) => (chatBlocked(a) === undefined ? 'done' : 'todo'),
    },
  ];
}

/** The sidebar (one button per step, the identity), the sections, and "Continue" after each first step. */
function pageLayout(sections: Section[], go: (id: SectionId) => void) {
  const nav = sections.map((section, i) => {
    const hint = h('small', { class: 'nav-hint', testid: `nav-${section.id}-hint` });
    const button = h(
      'button',
      { class: 'nav-item', testid: `nav-${section.id}`, onclick: () => go(section.id) },
      h('span', { class: 'nav-num', 'aria-hidden': 'true' }, String(i + 1)),
      h('span', { class: 'nav-text' }, h('span', { class: 'nav-title' }, section.title), hint),
    );
    return { section, button, hint };
  });
  // "Continue" at the end of the first steps, once each is done.
  const nextButtons = sections.slice(0, 3).map((section, i) => {
    const next = sections[i + 1];
    const button = h(
      'button',
      { class: 'next', testid: `next-${section.id}`, onclick: () => go(next.id) },
      `Continue: ${next.title} →`,
    );
    section.view.root.append(h('div', { class: 'page-foot' }, button));
    return { section, button };
  });
  const identity = h('code', { class: 'identity', testid: 'identity' });
  // Shown where no OS keychain seals the key (app-identity.ts): the person should know.
  const keyNote = h(
    'p',
    { class: 'muted small', testid: 'identity-key-note', hidden: true },
    "Your identity's secret key is not protected by a keychain on this computer: it is kept in a file only your user account can read.",
  );
  const main = h(
    'main',
    { class: 'content' },
    sections.map((s) => s.view.root),
  );
  const shell = h(
    'div',
    { class: 'shell' },
    h(
      'nav',
      { class: 'sidebar', 'aria-label': 'Steps' },
      h('p', { class: 'brand' }, 'fedit'),
      h(
        'div',
        { class: 'nav-list' },
        nav.map((n) => n.button),
      ),
      h(
        'div',
        { class: 'sidebar-foot' },
        h('span', { class: 'muted small' }, 'Your identity'),
        identity,
        keyNote,
      ),
    ),
    main,
  );
  return {
    root: shell,
    main,
    update(app: AppState, current: SectionId): void {
      for (const section of sections) {
        section.view.root.hidden = section.id !== current;
        section.view.update(app);
      }
      for (const { section, button, hint } of nav) {
        button.dataset.state = section.step(app);
        if (section.id === current) button.setAttribute('aria-current', 'page');
        else button.removeAttribute('aria-current');
        hint.textContent = section.hint(app);
      }
      for (const { section, button } of nextButtons) button.hidden = section.step(app) !== 'done';
      identity.textContent = grouped(app.identity ?? '', 4);
      identity.title = app.identity ?? '';
      keyNote.hidden = app.identityProtection !== 'file-permissions';
    },
  };
}

const mount = document.getElementById('app');
if (mount) {
  if (window.fedit) boot(window.fedit, mount);
  else {
    mount.replaceChildren(
      h(
        'div',
        { class: 'status-box problem fatal', testid: 'app-error', role: 'alert' },
        h('p', { class: 'box-title' }, 'fedit cannot reach its background service'),
        h('p', null, 'This page has to be opened by the fedit app.'),
      ),
    );
  }
}
