// A federation's settings as a participant reads them before agreeing to take part (the invite
// card) and after (the member card).

import type { FederationSummary } from '../../src/app/api.ts';
import { h } from './dom.ts';
import { count, grouped } from './words.ts';

/** The federation's settings as a participant reads them before agreeing to take part. */
export function federationDetails(s: FederationSummary): HTMLElement {
  const row = (term: string, ...value: (Node | string)[]) => [h('dt', null, term), h('dd', null, ...value)];
  const { lora, training } = s;
  return h(
    'div',
    { class: 'details' },
    h(
      'dl',
      { class: 'facts' },
      row('Coordinator', h('code', null, s.coordinatorUrl)),
      row(
        'Coordinator fingerprint',
        h('code', { class: 'fingerprint', testid: 'coordinator-fingerprint' }, s.coordinatorFingerprint),
        h('span', { class: 'hint' }, 'Compare it with the fingerprint the organiser gave you.'),
      ),
      row(
        'Base model',
        h('span', null, s.baseModel.name),
        h('code', { class: 'hint', title: s.baseModel.identity }, grouped(s.baseModel.identity)),
        s.baseModel.repo
          ? h(
              'span',
              { class: 'hint', testid: 'model-repo' },
              `Downloadable from Hugging Face: ${s.baseModel.repo}${s.baseModel.revision ? `@${s.baseModel.revision}` : ''}`,
            )
          : '',
      ),
      row('Rounds', count(s.rounds, 'round')),
      row(
        'Adapter (LoRA)',
        h(
          'span',
          null,
          `rank ${lora.rank}, alpha ${lora.alpha}, dropout ${lora.dropout}, on ${lora.targets.join(', ')}`,
        ),
        h(
          'span',
          { class: 'hint' },
          'The small add-on to the model that everyone trains together. These are its technical details.',
        ),
      ),
      row(
        'Training per round',
        `${count(training.localSteps, 'step')} of ${count(training.batchSize, 'example')}, ` +
          `learning rate ${training.lr}, examples cut at ${training.cutoffLen} tokens, ` +
          `${training.template} template`,
      ),
    ),
    h('h3', null, 'How the federation learns'),
    h('ul', { class: 'learning', testid: 'learning' }, ...s.learning.map((line) => h('li', null, line))),
    h('h3', null, 'Privacy'),
    s.privacy.length
      ? h('ul', { class: 'privacy', testid: 'privacy' }, ...s.privacy.map((line) => h('li', null, line)))
      : h('p', { class: 'muted' }, 'The federation states no privacy settings.'),
  );
}
