// What every view gets from the page: the API, and a way to run a call for one of its controls.

import type { AppState, FeditAppApi } from '../../src/app/api.ts';

export type SectionId = 'federation' | 'model' | 'data' | 'training' | 'chat';

export interface Ui {
  readonly api: FeditAppApi;
  /**
   * Runs an API call on behalf of a control (`key` names it, e.g. 'join'): the control is busy
   * meanwhile, its error slot shows what went wrong, and an AppState the call returns becomes the
   * page's state. Resolves with the result, or undefined when the call failed.
   */
  act<T>(key: string, call: () => Promise<T>): Promise<T | undefined>;
  busy(key: string): boolean;
  error(key: string): string | undefined;
  clearError(key: string): void;
  /** Re-renders every view from the current state (after a view changed its own local state). */
  render(): void;
  go(section: SectionId): void;
}

/** A part of the page: built once (so inputs keep what people typed), updated on every state. */
export interface View {
  root: HTMLElement;
  update(app: AppState): void;
}

/** Runs `build` only when `key` differs from the last call's: heavy parts re-render on change only. */
export function memo<K>(build: (key: K) => void): (key: K) => void {
  let last: string | undefined;
  return (key) => {
    const next = JSON.stringify(key) ?? 'undefined';
    if (next === last) return;
    last = next;
    build(key);
  };
}
