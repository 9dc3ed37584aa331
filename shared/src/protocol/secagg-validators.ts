// Validators of a secure round's messages (secagg-messages.ts), each reporting a failure as a
// ProtocolError naming the field. In their own file: messages.ts imports the schemas for its event
// tables and validate.ts imports messages.ts, so declaring these beside the schemas would close
// the import cycle messages.ts -> secagg-messages.ts -> validate.ts -> messages.ts.
import {
  secaggAdvertise,
  secaggConsistency,
  secaggInbox,
  secaggInboxRequest,
  secaggPhase,
  secaggReveal,
  secaggShares,
} from './secagg-messages.ts';
import { protocolValidator } from './validate.ts';

export const validateSecaggAdvertise = protocolValidator(secaggAdvertise);
export const validateSecaggShares = protocolValidator(secaggShares);
export const validateSecaggInboxRequest = protocolValidator(secaggInboxRequest);
export const validateSecaggInbox = protocolValidator(secaggInbox);
export const validateSecaggConsistency = protocolValidator(secaggConsistency);
export const validateSecaggReveal = protocolValidator(secaggReveal);
export const validateSecaggPhase = protocolValidator(secaggPhase);
