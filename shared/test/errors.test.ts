import test from 'ava';
import { FeditError, SafetensorsError } from '@fedit/shared';

test('a FeditError carries its stable code, message and cause', (t) => {
  const cause = new Error('disk on fire');
  const error = new FeditError('SOMETHING_WRONG', 'model.safetensors: something is wrong', { cause });
  t.is(error.code, 'SOMETHING_WRONG');
  t.is(error.message, 'model.safetensors: something is wrong');
  t.is(error.cause, cause);
  t.is(error.name, 'FeditError');
  t.true(error instanceof Error);
});

test('subclasses report their own name and are still FeditErrors', (t) => {
  const error = new SafetensorsError('SAFETENSORS_HEADER', 'bad header');
  t.is(error.name, 'SafetensorsError');
  t.true(error instanceof FeditError);
  t.is(error.code, 'SAFETENSORS_HEADER');
  t.true(String(error.stack).startsWith('SafetensorsError: bad header'));
});
