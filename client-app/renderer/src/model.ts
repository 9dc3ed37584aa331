// The base model folder: pick it, and see whether fedit can train on it (or, in words, why not).

import type { AppState, FederationSummary, ModelCheck } from '../../src/app/api.ts';
import { h } from './dom.ts';
import { picker } from './picker.ts';
import { memo, type Ui, type View } from './ui.ts';
import { grouped } from './words.ts';

type BaseModel = FederationSummary['baseModel'];

function modelStatus(model: ModelCheck | undefined, base: BaseModel | undefined): (HTMLElement | null)[] {
  if (!model) return [h('p', { class: 'muted' }, 'No model chosen yet.')];
  if (!model.ok) {
    return [
      h('p', { class: 'box-title' }, 'This folder cannot be used'),
      h('p', { testid: 'model-problem' }, model.problem ?? 'fedit could not read a model there.'),
      h('p', { class: 'path' }, model.dir),
    ];
  }
  return [
    h('p', { class: 'box-title' }, 'Ready'),
    h('p', { class: 'path' }, model.dir),
    model.identity
      ? h(
          'p',
          null,
          'Identity ',
          h('code', { title: model.identity, testid: 'model-identity' }, grouped(model.identity)),
        )
      : null,
    base && base.identity === model.identity
      ? h('p', null, `This is the federation's base model, ${base.name}.`)
      : null,
  ];
}

export function modelView(ui: Ui): View {
  const pick = picker(ui, {
    key: 'model',
    chooseLabel: 'Choose folder…',
    fieldLabel: "Or type the folder's path",
    fieldHint:
      "A Hugging Face model folder, with config.json, the model's .safetensors files and tokenizer.json.",
    useLabel: 'Use this path',
    multiline: false,
    placeholder: '/home/you/models/SmolLM2-135M-Instruct',
    busyNote:
      'Checking the model… The first time, fedit prepares the weights once; this can take a few minutes.',
    pick: (paths) => (paths ? ui.api.chooseModel(paths[0]) : ui.api.chooseModel()),
  });
  const status = h('div', { class: 'status-box', testid: 'model-status', 'aria-live': 'polite' });
  const renderStatus = memo(([model, base]: [ModelCheck | undefined, BaseModel | undefined]) => {
    status.className = `status-box ${!model ? 'neutral' : model.ok ? 'ok' : 'problem'}`;
    status.replaceChildren(...modelStatus(model, base).filter((x) => x !== null));
  });

  const root = h(
    'section',
    { class: 'page', testid: 'section-model' },
    h(
      'header',
      { class: 'page-head' },
      h('h1', null, 'Base model'),
      h(
        'p',
        { class: 'lead' },
        'The model everyone in the federation trains. It stays on this computer; fedit checks that it ' +
          "is exactly the federation's base model, so that everyone's updates fit together.",
      ),
    ),
    pick.card,
    status,
  );

  return {
    root,
    update(app) {
      pick.update(app.model ? [app.model.dir] : []);
      renderStatus([app.model, app.federation?.baseModel]);
    },
  };
}

export function modelHint(app: AppState): string {
  if (!app.model) return 'Not chosen yet';
  return app.model.ok ? 'Ready' : 'Cannot be used';
}
