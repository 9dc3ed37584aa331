// The base model folder: pick it, and see whether fedit can train on it (or, in words, why not).
// When the federation names the repository its model comes from, the model can be downloaded
// instead, with progress, and is checked to be the federation's.

import type { AppState, FederationSummary, ModelCheck, ModelDownload } from '../../src/app/api.ts';
import { errorSlot, h, showError } from './dom.ts';
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

const megabytes = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** The download card: offered when the federation names a repository and no right model is chosen. */
function downloadCard(ui: Ui) {
  const source = h('p', { testid: 'model-download-source' });
  const button = h(
    'button',
    {
      class: 'primary',
      testid: 'model-download',
      onclick: () => void ui.act('download-model', () => ui.api.downloadModel()),
    },
    'Download the model',
  );
  const progress = h('progress', { testid: 'model-download-progress', max: 1, value: 0 });
  const words = h('p', { class: 'muted', testid: 'model-download-text', 'aria-live': 'polite' });
  const error = errorSlot('model-download-error');
  const card = h(
    'div',
    { class: 'card', testid: 'model-download-card' },
    h('p', { class: 'box-title' }, 'Download it'),
    source,
    h('div', { class: 'actions' }, button),
    progress,
    words,
    error,
  );
  const render = (
    base: BaseModel | undefined,
    model: ModelCheck | undefined,
    d: ModelDownload | undefined,
  ) => {
    card.hidden = !base?.repo || (model?.ok === true && d?.state !== 'downloading');
    if (!base?.repo) return;
    const repo = `${base.repo}${base.revision ? `@${base.revision}` : ''}`;
    source.textContent = `The federation's organiser says it comes from Hugging Face, ${repo}. fedit downloads the files it needs and checks they are exactly the federation's model.`;
    const running = d?.state === 'downloading' || ui.busy('download-model');
    button.disabled = running;
    button.textContent = d?.state === 'failed' ? 'Continue the download' : 'Download the model';
    progress.hidden = !running;
    progress.value = d && d.total > 0 ? d.done / d.total : 0;
    words.textContent = !d
      ? ''
      : d.state === 'downloading'
        ? d.total > 0
          ? `${d.file ?? ''}: ${megabytes(d.done)} of ${megabytes(d.total)}`
          : 'Asking for the list of files…'
        : d.state === 'done'
          ? `Downloaded into ${d.dir}`
          : `The download stopped: ${d.problem ?? 'unknown reason'}`;
    showError(error, d?.state === 'failed' ? undefined : ui.error('download-model'));
  };
  return { card, render };
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
  const download = downloadCard(ui);
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
    download.card,
    pick.card,
    status,
  );

  return {
    root,
    update(app) {
      pick.update(app.model ? [app.model.dir] : []);
      renderStatus([app.model, app.federation?.baseModel]);
      download.render(app.federation?.baseModel, app.model, app.modelDownload);
    },
  };
}

export function modelHint(app: AppState): string {
  if (!app.model) return 'Not chosen yet';
  return app.model.ok ? 'Ready' : 'Cannot be used';
}
