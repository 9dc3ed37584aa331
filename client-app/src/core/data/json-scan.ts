// A JSON syntax scanner that knows where it is. JSON.parse says only that a file is broken (and,
// depending on the Node version, at which character offset); a person fixing a 50 MB export needs
// "line 48213, column 17: expected ',' or '}'". The scanner walks the text once, validates the full
// grammar (RFC 8259), and for a top-level array reports where each element starts, so every record
// keeps the line it came from. It builds no values: once the text is known to be valid, JSON.parse
// (native, fast) builds them.
//
// Iterative, with an explicit stack: a deeply nested file cannot overflow the call stack.

/** A syntax error at a 1-based line and column (columns count UTF-16 code units, as editors mostly do). */
export class JsonSyntaxError extends Error {
  constructor(
    readonly line: number,
    readonly column: number,
    readonly reason: string,
  ) {
    super(`${line}:${column}: ${reason}`);
    this.name = 'JsonSyntaxError';
  }
}

/** Where one element of a top-level array lies in the text. */
export interface ElementSpan {
  /** Offset of the element's first character. */
  start: number;
  /** Offset just past its last character. */
  end: number;
  /** 1-based line of its first character. */
  line: number;
}

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

const isDigit = (c: number): boolean => c >= ZERO && c <= NINE;
const isHex = (c: number): boolean => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

function trailingComma(at: { line: number; column: number }, closer: string): never {
  throw new JsonSyntaxError(at.line, at.column, `trailing comma before '${closer}' (JSON allows none)`);
}

class Scanner {
  pos: number;
  line = 1;
  lineStart = 0;

  constructor(
    readonly text: string,
    start = 0,
  ) {
    this.pos = start;
  }

  fail(reason: string, at = this.pos): never {
    throw new JsonSyntaxError(this.line, at - this.lineStart + 1, reason);
  }

  /** Where the scanner stands, to point back at later (a trailing comma is found past newlines). */
  here(): { line: number; column: number } {
    return { line: this.line, column: this.pos - this.lineStart + 1 };
  }

  /** Describes the character at `pos` for an error message. */
  found(): string {
    if (this.pos >= this.text.length) return 'the end of the text';
    const c = this.text.codePointAt(this.pos)!;
    if (c < 0x20 || c === 0x7f || c === 0xfeff)
      return `character U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
    return `'${String.fromCodePoint(c)}'`;
  }

  skipWhitespace(): void {
    const t = this.text;
    for (;;) {
      const c = t.charCodeAt(this.pos);
      if (c === LF) {
        this.pos++;
        this.line++;
        this.lineStart = this.pos;
      } else if (c === SPACE || c === TAB || c === CR) this.pos++;
      else return;
    }
  }

  expect(code: number, what: string): void {
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) !== code) this.fail(`expected ${what}, found ${this.found()}`);
    this.pos++;
  }

  string(): void {
    const t = this.text;
    this.pos++; // the opening quote
    for (;;) {
      const c = t.charCodeAt(this.pos);
      if (c === QUOTE) {
        this.pos++;
        return;
      }
      if (Number.isNaN(c)) this.fail('unterminated string');
      if (c < 0x20) {
        this.fail(
          c === LF || c === CR
            ? 'line break inside a string (write it as \\n)'
            : `unescaped control character U+${c.toString(16).padStart(4, '0')} inside a string`,
        );
      }
      if (c === BACKSLASH) {
        const e = t[this.pos + 1];
        if (e === 'u') {
          for (let k = 2; k < 6; k++) {
            if (!isHex(t.charCodeAt(this.pos + k))) this.fail('\\u must be followed by four hex digits');
          }
          this.pos += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) this.pos += 2;
        else this.fail(`invalid escape '\\${e ?? ''}' in a string`);
      } else this.pos++;
    }
  }

  number(): void {
    const t = this.text;
    const digits = (): void => {
      if (!isDigit(t.charCodeAt(this.pos))) this.fail(`expected a digit, found ${this.found()}`);
      while (isDigit(t.charCodeAt(this.pos))) this.pos++;
    };
    if (t.charCodeAt(this.pos) === MINUS) this.pos++;
    if (t.charCodeAt(this.pos) === ZERO) {
      this.pos++;
      if (isDigit(t.charCodeAt(this.pos))) this.fail('a number cannot have a leading zero', this.pos - 1);
    } else digits();
    if (t.charCodeAt(this.pos) === DOT) {
      this.pos++;
      digits();
    }
    const e = t.charCodeAt(this.pos);
    if (e === 0x65 || e === 0x45) {
      this.pos++;
      const s = t.charCodeAt(this.pos);
      if (s === PLUS || s === MINUS) this.pos++;
      digits();
    }
  }

  literal(): void {
    for (const word of ['true', 'false', 'null']) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return;
      }
    }
    const c = this.text[this.pos];
    const hint =
      c === "'"
        ? ' (JSON strings use double quotes)'
        : /[A-Za-z_]/.test(c ?? '')
          ? ' (keys and strings must be in double quotes)'
          : '';
    this.fail(`expected a value, found ${this.found()}${hint}`);
  }

  /** Scans one value starting at the next non-whitespace character. */
  value(): void {
    const t = this.text;
    // 'o' = inside an object, 'a' = inside an array
    const stack: ('o' | 'a')[] = [];
    for (;;) {
      // expecting a value
      this.skipWhitespace();
      const c = t.charCodeAt(this.pos);
      let closedEmpty = false;
      if (c === OPEN_BRACE) {
        this.pos++;
        this.skipWhitespace();
        if (t.charCodeAt(this.pos) === CLOSE_BRACE) {
          this.pos++;
          closedEmpty = true;
        } else {
          stack.push('o');
          this.key();
          continue;
        }
      } else if (c === OPEN_BRACKET) {
        this.pos++;
        this.skipWhitespace();
        if (t.charCodeAt(this.pos) === CLOSE_BRACKET) {
          this.pos++;
          closedEmpty = true;
        } else {
          stack.push('a');
          continue;
        }
      }
      if (!closedEmpty) {
        if (c === QUOTE) this.string();
        else if (c === MINUS || isDigit(c)) this.number();
        else this.literal();
      }
      // after a value: close containers or move to the next member
      for (;;) {
        if (stack.length === 0) return;
        this.skipWhitespace();
        const d = t.charCodeAt(this.pos);
        const top = stack[stack.length - 1];
        if (d === COMMA) {
          const comma = this.here();
          this.pos++;
          if (top === 'o') this.key(comma);
          else {
            this.skipWhitespace();
            if (t.charCodeAt(this.pos) === CLOSE_BRACKET) trailingComma(comma, ']');
          }
          break;
        }
        if (top === 'o' && d === CLOSE_BRACE) {
          this.pos++;
          stack.pop();
          continue;
        }
        if (top === 'a' && d === CLOSE_BRACKET) {
          this.pos++;
          stack.pop();
          continue;
        }
        this.fail(`expected ',' or '${top === 'o' ? '}' : ']'}', found ${this.found()}`);
      }
    }
  }

  /** An object key and its colon; `comma` is where the comma before it stands, if any. */
  key(comma?: { line: number; column: number }): void {
    this.skipWhitespace();
    const c = this.text.charCodeAt(this.pos);
    if (c === CLOSE_BRACE && comma) trailingComma(comma, '}');
    if (c !== QUOTE) this.fail(`expected a key in double quotes, found ${this.found()}`);
    this.string();
    this.expect(COLON, "':' after the key");
  }

  end(what: string): void {
    this.skipWhitespace();
    if (this.pos < this.text.length) this.fail(`unexpected ${this.found()} after ${what}`);
  }
}

/**
 * Validates `text` as one JSON document whose top level is an array, and returns where each of
 * its elements starts and ends. Throws JsonSyntaxError at the first error. `start` skips a prefix
 * (a byte-order mark) that still counts for columns of line 1.
 */
export function scanTopLevelArray(text: string, start = 0): ElementSpan[] {
  const s = new Scanner(text, start);
  const spans: ElementSpan[] = [];
  s.expect(OPEN_BRACKET, "'[' (a JSON array of records)");
  s.skipWhitespace();
  if (text.charCodeAt(s.pos) === CLOSE_BRACKET) {
    s.pos++;
  } else {
    for (;;) {
      s.skipWhitespace();
      const begin = s.pos;
      const line = s.line;
      s.value();
      spans.push({ start: begin, end: s.pos, line });
      s.skipWhitespace();
      const c = text.charCodeAt(s.pos);
      if (c === CLOSE_BRACKET) {
        s.pos++;
        break;
      }
      if (c !== COMMA) s.fail(`expected ',' or ']', found ${s.found()}`);
      const comma = s.here();
      s.pos++;
      s.skipWhitespace();
      if (text.charCodeAt(s.pos) === CLOSE_BRACKET) trailingComma(comma, ']');
    }
  }
  s.end("the closing ']' of the array");
  return spans;
}

/** Validates `text` as exactly one JSON value (a JSON Lines line). Throws JsonSyntaxError at the first error. */
export function scanJsonValue(text: string): void {
  const s = new Scanner(text);
  s.value();
  s.end('the end of the value');
}
