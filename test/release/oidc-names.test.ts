// The names of the OIDC service accounts Knative Eventing makes for Triggers, which the release
// writes into drop's DROP_ALLOWED_SENDERS. Expected values are derived here independently:
// by the rule as knative/eventing (GetOIDCServiceAccountNameForResource) and knative.dev/pkg
// (kmeta.ChildName) state it, by `md5sum` at a shell, and from Knative's own test vectors.
import { createHash } from 'node:crypto';
import t from 'tap';
import { oidcServiceAccountName, triggerSender } from '../../hack/release/senders.mjs';
import { triggerSenders } from '../../src/auth.ts';
import { matchesName } from '../../src/match.ts';

const suffix = '-oidc-eventing.knative.dev-trigger';
/** md5 (hex) of the whole child name as kmeta hashes it: the Trigger name plus the suffix, Kind capitalised. */
const md5OfWhole = (name: string) => createHash('md5').update(`${name}-oidc-eventing.knative.dev-Trigger`).digest('hex');

t.test('a Trigger name of up to 29 characters keeps the plain <trigger>-oidc-eventing.knative.dev-trigger', async (t) => {
  t.equal(oidcServiceAccountName('drop-critical', 'Trigger'), 'drop-critical' + suffix);
  t.equal(oidcServiceAccountName('drop-terminal-shell', 'Trigger'), 'drop-terminal-shell' + suffix);
  const boundary = 'drop-terminal-shell-container';
  t.equal(boundary.length, 29);
  t.equal(oidcServiceAccountName(boundary, 'Trigger'), boundary + suffix);
  t.equal(oidcServiceAccountName(boundary, 'Trigger').length, 63, 'exactly the 63 characters Kubernetes allows');
});

t.test('a 30-character Trigger name becomes the name plus the md5 of the whole: 62 characters', async (t) => {
  const name = 'drop-terminal-shell-containers';
  t.equal(name.length, 30);
  // kmeta pads 30 + 32 = 62 characters with the suffix's first one, a '-', then strips it again.
  t.equal(oidcServiceAccountName(name, 'Trigger'), name + md5OfWhole(name));
  // By hand: echo -n 'drop-terminal-shell-containers-oidc-eventing.knative.dev-Trigger' | md5sum
  t.equal(oidcServiceAccountName(name, 'Trigger'), 'drop-terminal-shell-containers66a3c481a6f9e58df0c168fffec76a7e');
});

t.test('a longer Trigger name becomes its first 31 characters plus the md5 of the whole name', async (t) => {
  const name = 'drop-terminal-shell-in-container-at-critical';
  const expected = name.slice(0, 31) + md5OfWhole(name);
  t.equal(oidcServiceAccountName(name, 'Trigger'), expected);
  t.equal(expected.length, 63);
  // By hand: echo -n 'drop-terminal-shell-in-container-at-critical-oidc-eventing.knative.dev-Trigger' | md5sum
  t.equal(expected, 'drop-terminal-shell-in-containe9794c57478a5626377f18531ec298e75');
  const lowercased = createHash('md5').update(name + suffix).digest('hex');
  t.not(oidcServiceAccountName(name, 'Trigger'), name.slice(0, 31) + lowercased, 'the hash is taken before lowercasing: Kind "Trigger", not "trigger"');
});

t.test('agrees with Knative\'s own vectors (knative/eventing pkg/auth/serviceaccount_test.go)', async (t) => {
  t.equal(oidcServiceAccountName('my-Broker', 'Broker'), 'my-broker-oidc-eventing.knative.dev-broker');
  t.equal(oidcServiceAccountName('my-loooooooooooooooooooooooooooooooooooooog-Broker', 'Broker'), 'my-looooooooooooooooooooooooooo2dfc2a3825b8d82077b0f25518b36884');
});

t.test('the sender is the account\'s username in the Trigger\'s namespace', async (t) => {
  t.equal(triggerSender('falco-drop', 'drop-critical'), 'system:serviceaccount:falco-drop:drop-critical' + suffix);
});

t.test('drop\'s default glob matches a short Trigger\'s account, never a hashed one: set DROP_ALLOWED_SENDERS', async (t) => {
  const defaults = triggerSenders('falco-drop');
  t.ok(matchesName(defaults, triggerSender('falco-drop', 'drop-terminal-shell-container')), '29 characters');
  t.notOk(matchesName(defaults, triggerSender('falco-drop', 'drop-terminal-shell-containers')), '30 characters');
  t.notOk(matchesName(defaults, triggerSender('falco-drop', 'drop-terminal-shell-in-container-at-critical')));
});
