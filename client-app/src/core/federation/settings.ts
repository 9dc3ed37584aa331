// The federation's settings as a participant sees them: the config JSON of the signed config record
// the coordinator answers 'federation:info' with (announced.ts checks the signature), checked by the one federation-config parser the coordinator uses
// (@fedit/shared validateFederationConfig), so a participant holds the config to the same bounds.
// This layer adds what only a participant needs: the text's origin in every error, an error the
// participant's code handles (FederationError), and the config as sent (`raw`), so the UI can
// show everything the operator set, including fields newer than this client.
import {
  ConfigError,
  configHash,
  validateFederationConfig,
  type ContentHash,
  type FederationConfig,
  type PromptTemplateName,
} from '@fedit/shared';
import type { LoraConfig, LoraTarget } from '@fedit/kernels';
import { FederationError } from './errors.ts';

export type { PromptTemplateName };

export type FederationSettings = FederationConfig & {
  /** The whole config as the coordinator sent it. */
  raw: Record<string, unknown>;
};

/** What 'federation:info' answers, parsed. */
export interface FederationInfoParsed {
  settings: FederationSettings;
  /** The config JSON text exactly as sent (its hash is `configHash`). */
  configText: string;
  configHash: ContentHash;
}

/**
 * Parses the federation config JSON. Throws FederationError FEDERATION_CONFIG naming the field
 * (and `source`, where the text came from) when a field is missing or out of bounds.
 */
export function parseFederationSettings(text: string, source = 'the federation config'): FederationSettings {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new FederationError(
      'FEDERATION_CONFIG',
      `${source} is not valid JSON: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  try {
    return { ...validateFederationConfig(raw), raw: raw as Record<string, unknown> };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new FederationError('FEDERATION_CONFIG', `${source}: ${err.field} ${err.problem}`, {
      cause: err,
      field: err.field,
    });
  }
}

/**
 * Parses what 'federation:info' answers and checks that the settings hash to the configHash their
 * signed config record announces with them: settings the coordinator recorded wrongly, or holding
 * fields this fedit does not know (which it would drop, and so not train under), are refused
 * rather than trained under. Throws FederationError FEDERATION_CONFIG_HASH naming both hashes.
 */
export function parseFederationInfo(
  info: { config: string; configHash: string },
  source: string,
): FederationSettings {
  const settings = parseFederationSettings(info.config, source);
  const own = configHash(settings);
  if (own !== info.configHash) {
    throw new FederationError(
      'FEDERATION_CONFIG_HASH',
      `${source} do not hash to the config hash the coordinator announces (${info.configHash}; they hash to ${own}): they were altered on the way, or hold settings this version of fedit does not know (update fedit)`,
    );
  }
  return settings;
}

/** The federation's LoRA settings as the engine takes them (at the federation's rank). */
export function federationLora(settings: FederationSettings): LoraConfig {
  const { rank, alpha, dropout, targets } = settings.lora;
  return { rank, alpha, dropout, targets: targets as LoraTarget[] };
}
