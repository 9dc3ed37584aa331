// The federation this computer is in: its settings, the name it joined as (and renaming it,
// which the coordinator records signed), and leaving. The invite and joining are ./federation.ts.

import type { FederationSummary } from '../../src/app/api.ts';
import { errorSlot, h, showError } from './dom.ts';
import { federationDetails } from './federation-details.ts';
import { memo, type Ui, type View } from './ui.ts';

/** The federation this computer is in, and the way out. */
export function memberCard(ui: Ui): View {
  let confirmingLeave = false;
  const leave = h(
    'button',
    {
      class: 'danger-outline',
      testid: 'leave',
      onclick: () => {
        confirmingLeave = true;
        ui.render();
      },
    },
    'Leave this federation',
  );
  const leaveConfirm = h(
    'button',
    {
      class: 'danger',
      testid: 'leave-confirm',
      onclick: async () => {
        await ui.act('leave', () => ui.api.leaveFederation());
        confirmingLeave = false;
        ui.render();
      },
    },
    'Yes, leave',
  );
  const leaveCancel = h(
    'button',
    {
      testid: 'leave-cancel',
      onclick: () => {
        confirmingLeave = false;
        ui.render();
      },
    },
    'Stay',
  );
  const leaveQuestion = leaveQuestionBox(leaveConfirm, leaveCancel);
  const leaveError = errorSlot('leave-error');
  const joinedName = h('h2', { testid: 'federation-name' });
  const joinedAs = h('strong', { testid: 'joined-as' });
  const rename = renameField(ui);
  const joinedDetails = h('div');
  // "your 3 of 3 updates are in the signed log (...)": the receipts this computer kept (receipts.ts).
  const signedLog = h('p', { class: 'muted', testid: 'signed-log' });
  const root = h(
    'div',
    { class: 'card', testid: 'federation-summary' },
    h('p', { class: 'eyebrow ok' }, 'You are a member'),
    joinedName,
    h(
      'p',
      { class: 'muted' },
      'You joined as ',
      joinedAs,
      '. The organiser sees this name; you can change it (the coordinator records the change).',
    ),
    signedLog,
    rename.root,
    joinedDetails,
    h('div', { class: 'actions' }, leave),
    leaveQuestion,
    leaveError,
  );

  const renderJoined = memo((s: FederationSummary | undefined) => {
    joinedName.textContent = s?.name ?? '';
    joinedDetails.replaceChildren(...(s ? [federationDetails(s)] : []));
  });
  return {
    root,
    update(app) {
      renderJoined(app.federation);
      joinedAs.textContent = app.federation?.joinedAs?.displayName ?? '';
      signedLog.textContent = app.federation?.signedLog ?? '';
      signedLog.hidden = app.federation?.signedLog === undefined;
      rename.update(app);
      leave.hidden = confirmingLeave;
      leaveQuestion.hidden = !confirmingLeave;
      leaveConfirm.disabled = ui.busy('leave');
      showError(leaveError, ui.error('leave'));
    },
  };
}

/**
 * The name shown to the organiser, editable after joining: Save sends a signed rename through the
 * coordinator. As in federation.ts's nameField, the value is read before ui.act redraws the page, and a field the
 * person is editing (focused, or being saved) is not overwritten by a redraw.
 */
function renameField(ui: Ui): View {
  const input = h('input', {
    id: 'rename-input',
    testid: 'rename-input',
    type: 'text',
    maxlength: 80,
    autocomplete: 'off',
  });
  const save = h(
    'button',
    {
      testid: 'rename-save',
      onclick: async () => {
        const displayName = input.value;
        await ui.act('rename', () => ui.api.renameParticipant(displayName));
        ui.render();
      },
    },
    'Save',
  );
  const error = errorSlot('rename-error');
  const root = h(
    'div',
    null,
    h('label', { for: 'rename-input' }, 'Change your name'),
    h('div', { class: 'actions' }, input, save),
    error,
  );
  return {
    root,
    update(app) {
      const current = app.federation?.joinedAs?.displayName ?? '';
      const busy = ui.busy('rename');
      if (document.activeElement !== input && !busy && !ui.error('rename')) input.value = current;
      save.disabled = busy;
      save.textContent = busy ? 'Saving…' : 'Save';
      showError(error, ui.error('rename'));
    },
  };
}

/**
 * Are you sure? Leaving only forgets the federation here: the coordinator has no "leave" message,
 * so it keeps counting this participant as eligible until its operator removes them. Say so
 * before it happens.
 */
function leaveQuestionBox(confirm: HTMLElement, cancel: HTMLElement): HTMLElement {
  return h(
    'div',
    { class: 'confirm', testid: 'leave-question' },
    h('p', { class: 'box-title' }, 'Leave this federation?'),
    h(
      'p',
      null,
      'Your computer stops taking part, and fedit forgets this federation on this computer. ' +
        'Your data and the model stay where they are.',
    ),
    h(
      'p',
      null,
      h('strong', null, 'The coordinator is not told. '),
      'It still counts you as a participant and may still pick you for rounds. To be removed, ' +
        "ask the federation's organiser (who sent you the invite) to remove you.",
    ),
    h('div', { class: 'actions' }, confirm, cancel),
  );
}
