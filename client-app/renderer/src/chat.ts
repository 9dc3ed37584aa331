// Try it: talk to the base model with the newest shared adapter this computer has. The reply
// streams in as 'chat' events carrying the id this page gave the request; each event's text is the
// next piece of the reply (appended), and the last one has done: true and says what answered (the
// shared adapter of which round, or the base model alone), shown under the reply.

import type { AppEvent, AppState, ChatSource } from '../../src/app/api.ts';
import { h, messageOf } from './dom.ts';
import type { Ui, View } from './ui.ts';

type ChatEvent = Extract<AppEvent, { type: 'chat' }>;

/** Why the chat is not open yet, in words; undefined when it is. */
export function chatBlocked(app: AppState): string | undefined {
  if (!app.federation) return 'Join a federation first: the chat answers with what the federation trained.';
  if (!app.model?.ok) return 'Choose the base model first (see Base model).';
  if (!app.history.some((entry) => entry.outcome === 'aggregated')) {
    return (
      'The chat opens once the federation has finished its first round. ' +
      'It then answers with the adapter everyone trained together.'
    );
  }
  return undefined;
}

let requests = 0;

export function chatView(ui: Ui): View & { onChat(event: ChatEvent): void } {
  /** The reply being streamed now. */
  let pending: { id: string; bubble: HTMLElement; text: Text } | undefined;
  let app: AppState | undefined;

  const log = h('div', { class: 'chat-log', testid: 'chat-log', 'aria-live': 'polite' });
  const empty = h('p', { class: 'muted chat-empty' }, "Ask something the federation's data is about.");
  log.append(empty);
  const input = messageInput(
    () => refresh(),
    () => send(),
  );
  const sendButton = h('button', { class: 'primary', testid: 'chat-send', onclick: () => send() }, 'Send');
  const unavailableWhy = h('p');
  const unavailable = h(
    'div',
    { class: 'status-box neutral', testid: 'chat-unavailable' },
    h('p', { class: 'box-title' }, 'Not available yet'),
    unavailableWhy,
  );

  const card = h(
    'div',
    { class: 'card chat' },
    log,
    h('div', { class: 'chat-compose' }, input, sendButton),
    h('p', { class: 'hint' }, 'Enter sends; Shift+Enter starts a new line.'),
  );

  function finish(message?: string, event?: ChatEvent): void {
    if (!pending) return;
    pending.bubble.classList.remove('streaming');
    const source = event && answeredBy(event.source, event.adapter);
    if (source) pending.bubble.append(h('p', { class: 'answered-by', testid: 'chat-answered-by' }, source));
    if (message) pending.bubble.append(h('p', { class: 'error' }, message));
    pending = undefined;
    refresh();
  }

  function send(): void {
    const prompt = input.value.trim();
    if (!prompt || pending || (app && chatBlocked(app))) return;
    const id = `chat-${Date.now().toString(36)}-${++requests}`;
    empty.remove();
    // Only the newest reply carries the test id, so tests can read "the reply".
    log.querySelector('[data-testid="chat-reply"]')?.removeAttribute('data-testid');
    const text = document.createTextNode('');
    const reply = bubble('model', h('p', { class: 'reply-text' }, text));
    reply.classList.add('streaming');
    reply.dataset.testid = 'chat-reply';
    log.append(bubble('you', h('p', null, prompt)), reply);
    pending = { id, bubble: reply, text };
    input.value = '';
    refresh();
    reply.scrollIntoView({ block: 'nearest' });
    ui.api.chat(id, prompt).catch((e: unknown) => {
      if (pending?.id === id) finish(messageOf(e));
    });
  }

  function refresh(): void {
    const why = app ? chatBlocked(app) : 'Loading…';
    unavailable.hidden = why === undefined;
    unavailableWhy.textContent = why ?? '';
    empty.hidden = why !== undefined;
    card.classList.toggle('blocked', why !== undefined);
    input.disabled = why !== undefined;
    sendButton.disabled = why !== undefined || pending !== undefined || !input.value.trim();
    sendButton.textContent = pending ? 'Answering…' : 'Send';
  }

  const root = h('section', { class: 'page', testid: 'section-chat' }, chatHead(), unavailable, card);

  return {
    root,
    update(state) {
      app = state;
      refresh();
    },
    onChat(event) {
      if (!pending || event.id !== pending.id) return;
      pending.text.appendData(event.text);
      if (event.error) finish(event.error, event);
      else if (event.done) finish(undefined, event);
    },
  };
}

const sentence = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1);

/**
 * Which adapter answered, in words: the federation's shared adapter of which round, or the base
 * model alone, and why not the newest when it cannot be used on this computer (not fetched, or not readable). From the structured `source`;
 * the backend's sentence (`adapter`) when there is none.
 */
export function answeredBy(source: ChatSource | undefined, words: string | undefined): string {
  if (!source) return words ? sentence(`answered with ${words.trim().replace(/\.$/, '')}.`) : '';
  const { adapter, newestKnown, problem } = source;
  const why = problem ? ` (${problem.trim().replace(/\.$/, '')})` : '';
  if (!newestKnown) {
    return 'Answered by the base model alone: there is no federation adapter yet.';
  }
  if (adapter && source.newest) {
    return `Answered with what the federation learned up to round ${adapter.round} (the newest shared adapter).`;
  }
  if (adapter) {
    return (
      `Answered with what the federation learned up to round ${adapter.round}: the newer shared adapter ` +
      `of round ${newestKnown.round} cannot be used on this computer${why}.`
    );
  }
  return (
    `Answered by the base model alone: the federation's shared adapter of round ${newestKnown.round} ` +
    `cannot be used on this computer${why}.`
  );
}

export function chatHint(app: AppState): string {
  return chatBlocked(app) ? 'After the first round' : 'Ready';
}

function bubble(who: 'you' | 'model', ...content: (Node | string)[]): HTMLElement {
  return h(
    'div',
    { class: `bubble ${who}` },
    h('span', { class: 'who' }, who === 'you' ? 'You' : 'Model'),
    ...content,
  );
}

function chatHead(): HTMLElement {
  return h(
    'header',
    { class: 'page-head' },
    h('h1', null, 'Try it'),
    h(
      'p',
      { class: 'lead' },
      'Talk to the model with what the federation has learned: the newest shared adapter this ' +
        'computer has. Under each answer you see which one answered. It runs on this computer; ' +
        'nothing you write here is sent anywhere.',
    ),
  );
}

/** The message box: `changed` on every edit, `enter` on Enter (Shift+Enter starts a new line). */
function messageInput(changed: () => void, enter: () => void): HTMLTextAreaElement {
  return h('textarea', {
    id: 'chat-input',
    testid: 'chat-input',
    rows: 2,
    placeholder: 'Write a message…',
    'aria-label': 'Message',
    oninput: changed,
    onkeydown: (event: Event) => {
      const key = event as KeyboardEvent;
      if (key.key === 'Enter' && !key.shiftKey && !key.isComposing) {
        key.preventDefault();
        enter();
      }
    },
  });
}
