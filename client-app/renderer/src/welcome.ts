// First run: what fedit keeps on this computer, what it sends, and the one button to begin.

import { errorSlot, h, showError } from './dom.ts';
import type { Ui, View } from './ui.ts';

export function welcomeView(ui: Ui): View {
  const create = h(
    'button',
    {
      class: 'primary large',
      testid: 'create-identity',
      onclick: () => void ui.act('create-identity', () => ui.api.createIdentity()),
    },
    'Create my identity',
  );
  const error = errorSlot('create-identity-error');
  const home = h('code', { testid: 'home-dir' });

  const root = h(
    'section',
    { class: 'welcome', testid: 'welcome' },
    h(
      'div',
      { class: 'welcome-card' },
      h('p', { class: 'brand-mark' }, 'fedit'),
      h('h1', null, 'Welcome'),
      h(
        'p',
        { class: 'lead' },
        'fedit lets you help train a shared language model together with other people. ' +
          'Your computer trains on your examples here and sends the coordinator what it learned from ' +
          'them: an update of a small adapter, not the files. Below is exactly what leaves this computer.',
      ),
      whatStaysAndWhatLeaves(),
      h(
        'p',
        { class: 'muted' },
        'To begin, fedit creates your identity: a pair of keys kept in ',
        home,
        ', readable by you only. You can then join a federation with the invite its organiser sent you.',
      ),
      h('div', { class: 'actions' }, create),
      error,
    ),
  );

  return {
    root,
    update(app) {
      home.textContent = app.homeDir;
      const busy = ui.busy('create-identity');
      create.disabled = busy;
      create.textContent = busy ? 'Creating…' : 'Create my identity';
      showError(error, ui.error('create-identity'));
    },
  };
}

/** The promise, in two columns: what stays on this computer, and what leaves it. */
function whatStaysAndWhatLeaves(): HTMLElement {
  return h(
    'div',
    { class: 'two-columns' },
    h(
      'div',
      { class: 'panel stays' },
      h('h2', null, 'Stays on this computer'),
      h(
        'ul',
        null,
        h('li', null, h('strong', null, 'Your data'), ' as you wrote it: it is read here and never sent.'),
        h('li', null, h('strong', null, 'The model'), ' you train on.'),
        h('li', null, h('strong', null, 'Your keys'), ', which prove that your updates come from you.'),
        h('li', null, h('strong', null, 'Your chats'), ' in Try it: the model answers here.'),
        h(
          'li',
          null,
          h('strong', null, 'How training went'),
          ' on your computer (the loss, the logs), unless you send the logs yourself.',
        ),
      ),
    ),
    h(
      'div',
      { class: 'panel leaves', testid: 'what-leaves' },
      h('h2', null, 'Leaves this computer'),
      h(
        'ul',
        null,
        h(
          'li',
          null,
          'For each round you train in, ',
          h('strong', null, 'an update of a small adapter'),
          ' (LoRA weights) that your computer trained on your data, signed with your key and ' +
            'encrypted on its way to the coordinator.',
        ),
        h(
          'li',
          null,
          h('strong', null, 'The organiser sees your update on its own'),
          ': the coordinator decrypts each update to combine them; it is not hidden among the others.',
        ),
        h(
          'li',
          null,
          h('strong', null, 'An update can reveal some of your text'),
          ': it is computed from your examples, and a model can learn rare phrases (a name, a number) ' +
            'word for word. Train only on data you would accept that risk for.',
        ),
        h(
          'li',
          null,
          'With each update, ',
          h('strong', null, 'how many examples'),
          ' it was trained on: the coordinator gives updates from more examples more weight.',
        ),
        h(
          'li',
          null,
          'When you join: your public key and the name you choose. While fedit runs: that you are online.',
        ),
        h('li', null, 'Not your files: not the examples as you wrote them, not their names.'),
      ),
    ),
  );
}
