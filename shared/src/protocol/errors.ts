import { FeditError } from '../errors.ts';

export type ProtocolErrorCode =
  /** A required field is absent. */
  | 'PROTOCOL_MISSING'
  /** A field has the wrong type (a string where bytes belong, a float where an integer does). */
  | 'PROTOCOL_TYPE'
  /** A number is out of range, or a string, byte string or list has the wrong length. */
  | 'PROTOCOL_RANGE'
  /** A string does not have the required form (federation id, content hash, URL, ...). */
  | 'PROTOCOL_FORMAT'
  /** An object carries a field the protocol does not define. */
  | 'PROTOCOL_UNKNOWN_FIELD'
  /** Fields disagree with each other (chunk count vs payload size, unsorted tensor names, ...). */
  | 'PROTOCOL_INCONSISTENT'
  /** A signature does not verify. */
  | 'PROTOCOL_SIGNATURE'
  /** A frame is not valid MessagePack, or not a socket.io packet fedit accepts. */
  | 'PROTOCOL_DECODE'
  /** A value cannot be sent: fedit messages carry only plain data and Uint8Arrays. */
  | 'PROTOCOL_ENCODE'
  /** An event name the receiving side does not handle. */
  | 'PROTOCOL_UNKNOWN_EVENT';

/**
 * A message broke the wire protocol. `field` is the path of the value at fault
 * ('envelope.tensorSchema[2].shape'), and the message starts with it.
 */
export class ProtocolError extends FeditError {
  declare readonly code: ProtocolErrorCode;
  readonly field: string;

  constructor(code: ProtocolErrorCode, field: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.field = field;
  }
}
