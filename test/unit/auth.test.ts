import t from 'tap';
import { triggerSenders } from '../../src/auth.ts';
import { matchesName } from '../../src/match.ts';

t.test('the default senders are the Triggers of drop\'s namespace, or of any when it is unknown', async (t) => {
  const [own] = triggerSenders('falco-drop');
  t.equal(own, 'system:serviceaccount:falco-drop:*-oidc-eventing.knative.dev-trigger');
  t.ok(matchesName(triggerSenders('falco-drop'), 'system:serviceaccount:falco-drop:drop-terminal-shell-oidc-eventing.knative.dev-trigger'));
  t.notOk(matchesName(triggerSenders('falco-drop'), 'system:serviceaccount:team-a:drop-oidc-eventing.knative.dev-trigger'));
  t.notOk(matchesName(triggerSenders('falco-drop'), 'system:serviceaccount:falco-drop:drop'), 'drop\'s own account is no Trigger');
  t.ok(matchesName(triggerSenders(undefined), 'system:serviceaccount:team-a:drop-oidc-eventing.knative.dev-trigger'));
});
