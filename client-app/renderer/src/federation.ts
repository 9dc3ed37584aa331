// Joining: paste the invite, read what the federation will do, then agree (or not). Once joined,
// the same settings stay on show, with the way out.

import type { AppState, FederationSummary } from '../../src/app/api.ts';
import { costView } from './cost.ts';
import { errorSlot, h, showError } from './dom.ts';
import { memo, type Ui, type View } from './ui.ts';
import { federationDetails } from './federation-details.ts';
import { memberCard } from './federation-member.ts';

export function federationView(ui: Ui): View {
  const pending: Pending = { inspected: undefined, show: () => undefined };
  const inviteForm = inviteCard(ui, pending);
  const beforeJoining = beforeJoiningCard(ui, pending, inviteForm);
  pending.show = () => beforeJoining.root.scrollIntoView({ block: 'start', behavior: 'smooth' });
  const member = memberCard(ui);
  const root = h(
    'section',
    { class: 'page', testid: 'section-federation' },
    h(
      'header',
      { class: 'page-head' },
      h('h1', null, 'Federation'),
      h(
        'p',
        { class: 'lead' },
        'A federation is a group of people who train one shared model together. ' +
          'Each computer learns from its own data; a coordinator combines what they learned.',
      ),
    ),
    inviteForm.root,
    beforeJoining.root,
    member.root,
  );
  return {
    root,
    update(app: AppState) {
      const joined = app.federation !== undefined;
      inviteForm.root.hidden = joined;
      beforeJoining.root.hidden = joined || !pending.inspected;
      member.root.hidden = !joined;
      for (const part of [inviteForm, beforeJoining, member]) part.update(app);
    },
  };
}

/** An invite checked but not joined yet, shared by the invite form and the card that shows it. */
interface Pending {
  /** The invite's settings once checked, shown before joining. */
  inspected: FederationSummary | undefined;
  /** Brings the settings into view. */
  show(): void;
}

/**
 * The name to join as, saved as it is typed (on change). The value is read before ui.act runs: act
 * redraws the page first, and a redraw writes the saved name into a field that has lost focus, so
 * a name typed before clicking into the invite box was lost (and the app joined as
 * `participant-<id>`). A field whose edit is being saved is left as the person typed it.
 */
function nameField(ui: Ui): View & { input: HTMLInputElement; save(): Promise<unknown> } {
  const input = h('input', {
    id: 'display-name',
    testid: 'display-name',
    type: 'text',
    maxlength: 80,
    autocomplete: 'off',
    onchange: () => void save(),
  });
  const error = errorSlot('display-name-error');
  let saved = '';
  const save = () => {
    const displayName = input.value;
    if (displayName.trim() === saved) return Promise.resolve(true);
    return ui.act('display-name', () => ui.api.updateSettings({ displayName }));
  };
  const root = h(
    'div',
    null,
    h('label', { for: 'display-name' }, 'Your name'),
    h('p', { class: 'hint' }, 'The organiser sees it next to your updates. You can leave it empty.'),
    input,
    error,
  );
  return {
    root,
    input,
    save,
    update(app) {
      saved = app.settings.displayName;
      if (document.activeElement !== input && !ui.busy('display-name')) input.value = saved;
      showError(error, ui.error('display-name'));
    },
  };
}

/** The name to join as, and the invite to check. */
function inviteCard(
  ui: Ui,
  pending: Pending,
): View & { invite: HTMLTextAreaElement; name: ReturnType<typeof nameField> } {
  const name = nameField(ui);
  const invite = h('textarea', {
    id: 'invite',
    testid: 'invite-input',
    rows: 3,
    spellcheck: false,
    autocomplete: 'off',
    placeholder: 'fedit-invite:…',
    // A changed invite must be checked again before anyone can join with it.
    oninput: () => {
      pending.inspected = undefined;
      ui.clearError('invite');
      ui.render();
    },
  });
  const check = h(
    'button',
    {
      class: 'primary',
      testid: 'invite-check',
      onclick: async () => {
        pending.inspected = await ui.act('invite', () => ui.api.inspectInvite(invite.value.trim()));
        ui.render();
        if (pending.inspected) pending.show();
      },
    },
    'Check',
  );
  const inviteError = errorSlot('invite-error');

  const root = h(
    'div',
    { class: 'card' },
    name.root,
    h('label', { for: 'invite' }, 'Invite'),
    h('p', { class: 'hint' }, 'Paste the invite the organiser sent you. It is a single line.'),
    invite,
    h('div', { class: 'actions' }, check),
    inviteError,
  );

  return {
    root,
    invite,
    name,
    update(app) {
      name.update(app);
      const checking = ui.busy('invite');
      check.disabled = checking || !invite.value.trim();
      check.textContent = checking ? 'Checking…' : 'Check';
      showError(inviteError, ui.error('invite'));
    },
  };
}

/** What the federation of a checked invite will do, and the choice: join, or not. */
function beforeJoiningCard(
  ui: Ui,
  pending: Pending,
  form: { invite: HTMLTextAreaElement; name: { save(): Promise<unknown> } },
): View {
  const { invite } = form;
  const join = h(
    'button',
    {
      class: 'primary',
      testid: 'join',
      onclick: async () => {
        // The name as typed goes with the join, even when its own save has not finished.
        if (!(await form.name.save())) return;
        if (await ui.act('join', () => ui.api.joinFederation(invite.value.trim()))) {
          pending.inspected = undefined;
          invite.value = '';
          ui.render();
        }
      },
    },
    'Join',
  );
  const cancel = h(
    'button',
    {
      testid: 'invite-cancel',
      onclick: () => {
        pending.inspected = undefined;
        ui.clearError('join');
        ui.render();
      },
    },
    'Cancel',
  );
  const joinError = errorSlot('join-error');
  const cost = costView(ui, () => invite.value.trim());
  const inspectedName = h('h2', { testid: 'invite-name' });
  const inspectedDetails = h('div');
  const root = h(
    'div',
    { class: 'card emphasis', testid: 'invite-settings' },
    h('p', { class: 'eyebrow' }, 'Before you join'),
    inspectedName,
    h(
      'p',
      { class: 'muted' },
      'This is what the federation will do with your computer. Join only if it looks right to you.',
    ),
    inspectedDetails,
    cost.root,
    h('div', { class: 'actions' }, join, cancel),
    joinError,
  );

  const renderInspected = memo((s: FederationSummary | undefined) => {
    cost.reset(); // another invite, another federation: measured again
    inspectedName.textContent = s?.name ?? '';
    inspectedDetails.replaceChildren(...(s ? [federationDetails(s)] : []));
  });
  return {
    root,
    update(app) {
      renderInspected(pending.inspected);
      cost.update(app);
      const joining = ui.busy('join');
      join.disabled = joining;
      join.textContent = joining ? 'Joining…' : 'Join';
      cancel.disabled = joining;
      showError(joinError, ui.error('join'));
    },
  };
}

/** One line for the navigation. */
export function federationHint(app: AppState): string {
  return app.federation ? app.federation.name : 'Not joined yet';
}
