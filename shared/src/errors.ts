// Every error fedit raises on purpose is a FeditError, so callers (the CLI, the coordinator's
// request handlers) can tell "this input is wrong, here is why" apart from bugs, and can branch
// on `code`, which stays stable across releases while messages may be reworded.
export class FeditError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    // new.target is the subclass actually constructed, so SafetensorsError reports its own name
    // without each subclass having to repeat this line.
    this.name = new.target.name;
  }
}
