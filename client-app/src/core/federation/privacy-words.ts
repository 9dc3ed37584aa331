// What the coordinator can see of a participant's update, in words, from the federation's config:
// one source for `fedit client join` (cli/client.ts) and the desktop app's privacy list
// (app/federation-summary.ts), so the two never say different things. docs/privacy.md, "Today, in
// plain words", says the same. The words must stay exactly true: with secure aggregation
// (shared/src/secagg/round/), the coordinator unmasks only the sum of a round's masked updates and
// the total of their (capped) example counts; without it, it opens every update.

/** The config fields the words depend on (the parsed config, or its raw JSON). */
export interface PrivacySources {
  secureAggregation?: { thresholdFraction?: unknown; clipRange?: unknown } | undefined;
  differentialPrivacy?: unknown;
}

/** Whether rounds of this federation are secure (its config has the section). */
export function isSecure(config: PrivacySources): boolean {
  return typeof config.secureAggregation === 'object' && config.secureAggregation !== null;
}

/** The threshold as a person reads it: "70%". */
function percent(fraction: unknown): string {
  return typeof fraction === 'number' ? `${Math.round(fraction * 100)}%` : 'a set share';
}

/** What happens to an update on its way and at the coordinator (the app's second privacy line). */
export function updateVisibilityWords(config: PrivacySources): string {
  if (!isSecure(config)) {
    const visible =
      "Each update is signed with your key and encrypted on its way to the coordinator. Your individual update is visible to the federation's organiser, who runs the coordinator";
    // With DP but without secure aggregation the coordinator adds the noise: it sees the update first.
    return config.differentialPrivacy !== undefined
      ? `${visible}: it is not hidden by secure aggregation. Differential privacy does not hide it from the organiser either.`
      : `${visible}: it is not hidden by secure aggregation or differential privacy (methods some federations use so that no single participant's update can be seen, or so that the shared adapters reveal little about any one participant).`;
  }
  const secure = config.secureAggregation!;
  const range =
    typeof secure.clipRange === 'number' ? ` (each number first limited to ±${secure.clipRange})` : '';
  return `Secure aggregation: your update is masked on this computer before it is sent${range}, so the coordinator can unmask only the sum of a round's updates, never yours alone, and only while more than ${percent(secure.thresholdFraction)} of the participants your update is masked with are still there; otherwise the round stops and nothing is unmasked. This holds unless the organiser also controls enough of the other participants of your round.`;
}

/** What goes with the update (the app's third privacy line). */
export function updateCompanionWords(config: PrivacySources): string {
  if (!isSecure(config))
    return 'With each update goes the number of examples it was trained on, and how well the shared adapter did on a few of your examples set aside (never trained on): how many, the loss, and how many answers matched exactly. Never the examples themselves.';
  return 'The number of examples you trained on is added into the same masked sum, so the coordinator learns only the total of the round; the figures of your examples set aside are kept on this computer. The new shared adapter (the average) is seen by every participant: with few participants in a round it can still reveal something about one of them.';
}

/** The lines `fedit client join` prints about the upload, before asking to join. */
export function joinWords(config: PrivacySources): string[] {
  if (!isSecure(config))
    return [
      'Your data stays on this computer. Each round, the adapter trained on it is encrypted to the',
      'coordinator and sent with your signature; the coordinator can read it.',
    ];
  const secure = config.secureAggregation!;
  return [
    'Your data stays on this computer. Each round, the adapter trained on it is masked here',
    '(secure aggregation) and sent with your signature: the coordinator sees only the sum of the',
    `round's updates and the total of their example counts, never yours alone, as long as more than`,
    `${percent(secure.thresholdFraction)} of the participants your update is masked with stay; below that the round stops and`,
    'nothing is unmasked. The averaged adapter that results is seen by every participant.',
  ];
}
