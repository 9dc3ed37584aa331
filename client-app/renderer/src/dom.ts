// A few lines of DOM building, so views read as the markup they make. No inline styles anywhere:
// the page's Content-Security-Policy forbids them (sizes that depend on data are set through the
// CSSOM, which the policy allows, or as SVG attributes).

export type Child = Node | string | number | null | undefined | false;
type AttrValue = string | number | boolean | null | undefined;
export type Attrs = Record<string, AttrValue | ((event: Event) => void)>;

function setAttrs(el: Element, attrs: Attrs | null | undefined): void {
  if (!attrs) return;
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === 'function') {
      el.addEventListener(name.replace(/^on/, ''), value);
    } else if (value === true) {
      el.setAttribute(name === 'testid' ? 'data-testid' : name, '');
    } else if (value !== false && value !== null && value !== undefined) {
      el.setAttribute(name === 'testid' ? 'data-testid' : name, String(value));
    }
  }
}

function append(el: Element, children: (Child | Child[])[]): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'number' ? String(child) : child);
  }
}

/** An HTML element: `h('button', { class: 'primary', testid: 'join', onclick }, 'Join')`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element; sizes and positions are attributes, never style. */
export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: (Child | Child[])[]
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Shows a message in an error slot, or hides the slot when there is none. */
export function showError(slot: HTMLElement, message: string | undefined): void {
  slot.textContent = message ?? '';
  slot.hidden = !message;
}

/** An empty error slot (role=alert so screen readers announce it). */
export function errorSlot(testid: string): HTMLParagraphElement {
  const slot = h('p', { class: 'error', role: 'alert', testid });
  slot.hidden = true;
  return slot;
}

/**
 * The message of an error thrown by an API call. The backend's FeditError messages are written
 * for people; Electron's IPC wraps them in "Error invoking remote method 'x': Error: ...", which
 * is noise to a participant.
 */
export function messageOf(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/^Error invoking remote method '[^']*': /, '').replace(/^[A-Za-z]*Error: /, '');
}
