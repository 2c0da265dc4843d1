// The senders drop allows once DROP_AUDIENCE turns authentication on: the OIDC service accounts
// Knative Eventing makes for the release's own Triggers, named exactly as Knative names them.
// config/ holds a placeholder in drop's env (DROP_ALLOWED_SENDERS); manifests.mjs fills it in.
import { createHash } from 'node:crypto';

/** The value of DROP_ALLOWED_SENDERS in config/ that the release replaces with the accounts. */
export const sendersPlaceholder = 'knative://trigger-oidc-service-accounts';

// Kubernetes' longest name, and how much of the parent kmeta keeps in front of an md5 (hex).
const longest = 63;
const head = longest - 32;

/**
 * The name of the OIDC service account Knative Eventing gives an object of `kind` in the
 * eventing.knative.dev group (knative/eventing GetOIDCServiceAccountNameForResource): the
 * object's name plus `-oidc-eventing.knative.dev-<Kind>`, shortened the way knative.dev/pkg's
 * kmeta.ChildName shortens a child name longer than 63 characters, then lowercased.
 * That suffix is longer than 31 characters, so a name over 63 is always the parent's first 31
 * characters plus the md5 of the whole name (the kind still capitalised), padded with the
 * suffix's start and stripped of a trailing non-alphanumeric (for a 30-character parent: 62).
 */
export function oidcServiceAccountName(name, kind) {
  const suffix = `-oidc-eventing.knative.dev-${kind}`;
  const whole = name + suffix;
  if (whole.length <= longest) return whole.toLowerCase();
  const hashed = name.slice(0, head) + createHash('md5').update(whole).digest('hex');
  const padded = hashed + suffix.slice(0, Math.max(0, longest - hashed.length));
  return padded.replace(/[^a-zA-Z0-9]+$/, '').toLowerCase();
}

/** The username a Trigger's OIDC token carries (TokenReview `status.user.username`). */
export function triggerSender(namespace, trigger) {
  return `system:serviceaccount:${namespace}:${oidcServiceAccountName(trigger, 'Trigger')}`;
}
