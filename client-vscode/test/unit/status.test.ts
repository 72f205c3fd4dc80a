import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { breakdownEntries, escalatableRuns, parseRiskSummary, parseRuns, parseStatusReply, RiskSummary, statusView, summaryFor } from '../../src/logic/status';

const NOTIFICATION = {
  folderUri: 'file:///repo',
  riskScore: 9,
  lane: 'strong',
  alwaysStrong: ['auth_code (auth path rule): services/identity/tokens.py'],
  contributions: [
    { signal: 'files', points: 1, reason: '1 file touched', evidence: [{ path: 'services/identity/tokens.py' }] },
    { signal: 'auth_code', points: 5, reason: 'authentication code', evidence: [{ path: 'services/identity/tokens.py', line: 12, detail: 'jwt.decode' }] },
    { signal: 'new_code', points: 3, reason: 'new function', evidence: [] },
  ],
  files: ['services/identity/tokens.py'],
};

describe('parseRiskSummary', () => {
  test('reads the notification contract', () => {
    const s = parseRiskSummary(NOTIFICATION);
    assert.ok(s);
    assert.equal(s.riskScore, 9);
    assert.equal(s.lane, 'strong');
    assert.equal(s.contributions[1].evidence[0], 'services/identity/tokens.py:12 jwt.decode');
    assert.equal(s.refreshing, false);
  });
  test('reads the CLI/status snake_case shape', () => {
    const s = parseRiskSummary({ uri: 'file:///r', risk_score: 2, lane: 'fast', always_strong: [], paths: ['README.md'], refreshing: true, error: null });
    assert.equal(s?.riskScore, 2);
    assert.deepEqual(s?.files, ['README.md']);
    assert.equal(s?.refreshing, true);
  });
  test('rejects what is not a summary and sanitises odd fields', () => {
    assert.equal(parseRiskSummary('nope'), undefined);
    assert.equal(parseRiskSummary({ riskScore: 3 }), undefined);
    const s = parseRiskSummary({ folderUri: 'file:///r', riskScore: 'high', lane: 'medium' });
    assert.equal(s?.riskScore, null);
    assert.equal(s?.lane, null);
  });
});

describe('statusView', () => {
  const summary = parseRiskSummary(NOTIFICATION) as RiskSummary;
  test('risk and lane in the text, breakdown in the tooltip', () => {
    const view = statusView(summary, 'running');
    assert.equal(view.text, '$(shield) Risk 9 · strong');
    assert.match(view.tooltip, /risk 9, strong lane/);
    assert.match(view.tooltip, /\+5 auth_code/);
    assert.match(view.tooltip, /Always strong: auth_code/);
    assert.equal(view.severity, 'warning');
  });
  test('fast lane', () => {
    const view = statusView({ ...summary, riskScore: 2, lane: 'fast', alwaysStrong: [] }, 'running');
    assert.equal(view.text, '$(zap) Risk 2 · fast');
    assert.equal(view.severity, 'none');
  });
  test('refreshing spins', () => {
    assert.ok(statusView({ ...summary, refreshing: true }, 'running').text.startsWith('$(sync~spin) '));
  });
  test('server states', () => {
    assert.equal(statusView(summary, 'failed').severity, 'error');
    assert.match(statusView(undefined, 'starting').text, /sync~spin/);
    assert.match(statusView(undefined, 'running').tooltip, /no change set/);
  });
  test('a failed server: the click opens the log, as the tooltip says', () => {
    const view = statusView(summary, 'failed');
    assert.match(view.tooltip, /Click for the log/);
    assert.equal(view.command, 'routeAgent.showLog');
    assert.equal(statusView(summary, 'running').command, 'routeAgent.showRiskBreakdown');
  });
  test('no score yet after a (re)start says it is computing, not "no change"', () => {
    const view = statusView({ ...summary, riskScore: null, lane: null, contributions: [], refreshing: true }, 'running');
    assert.doesNotMatch(view.text, /Risk|no change/);
    assert.match(view.text, /sync~spin/);
    assert.match(view.tooltip, /computing the risk/);
  });
  test('no literal backticks in the plain-text tooltip', () => {
    const error = 'HEAD is detached in /r; Check out a branch first (`git switch -c my-branch`)';
    const view = statusView({ ...summary, riskScore: null, lane: null, error }, 'running');
    assert.ok(!view.tooltip.includes('`'), view.tooltip);
    assert.match(view.tooltip, /'git switch -c my-branch'/);
    const noted = statusView({ ...summary, error: 'policy `x.yaml`: **bold**' }, 'running');
    assert.ok(!noted.tooltip.includes('`') && !noted.tooltip.includes('**'), noted.tooltip);
  });
  test('an error without a score', () => {
    const view = statusView({ ...summary, riskScore: null, lane: null, error: 'policy error: line 3' }, 'running');
    assert.equal(view.text, '$(warning) Risk ?');
    assert.match(view.tooltip, /policy error/);
  });
});

describe('policy warnings', () => {
  const warning = ".route-agent/policy.yaml:2:3: verification.sandbox: \"off\" ignored, it would lower a protection (kept \"required\")";
  test('a repository policy that lowers a protection shows in the tooltip and the breakdown', () => {
    const s = parseRiskSummary({ ...NOTIFICATION, lane: 'fast', alwaysStrong: [], policyWarnings: [warning] }) as RiskSummary;
    assert.deepEqual(s.policyWarnings, [warning]);
    const view = statusView(s, 'running');
    assert.match(view.tooltip, /Ignored in the repository's policy: .*verification\.sandbox/);
    assert.equal(view.severity, 'warning');
    assert.ok(breakdownEntries(s).some((e) => e.detail === warning));
  });
  test('none when the server sends none', () => {
    assert.deepEqual(parseRiskSummary(NOTIFICATION)?.policyWarnings, []);
  });
});

describe('breakdownEntries', () => {
  test('breakdown then actions', () => {
    const entries = breakdownEntries(parseRiskSummary(NOTIFICATION));
    const labels = entries.map((e) => e.label);
    assert.ok(labels.includes('$(shield) Risk score: 9'));
    assert.ok(labels.includes('+5 auth_code'));
    const commands = entries.filter((e) => e.command).map((e) => e.command);
    assert.deepEqual(commands, [
      'routeAgent.routeTask',
      'routeAgent.escalate',
      'routeAgent.showLedgerReport',
      'routeAgent.approvePolicyCommands',
      'routeAgent.setApiKey',
      'routeAgent.restartServer',
      'routeAgent.showLog',
    ]);
    assert.ok(labels.indexOf('Risk breakdown') < labels.indexOf('Actions'));
  });
  test('actions only without a summary', () => {
    assert.equal(breakdownEntries(undefined)[0].label, 'Actions');
  });
});

describe('summaryFor', () => {
  const a = parseRiskSummary({ folderUri: 'file:///ws/a', riskScore: 1, lane: 'fast' }) as RiskSummary;
  const ab = parseRiskSummary({ folderUri: 'file:///ws/a/b', riskScore: 8, lane: 'strong' }) as RiskSummary;
  const map = new Map([[a.folderUri, a], [ab.folderUri, ab]]);
  test('deepest folder holding the active file', () => {
    assert.equal(summaryFor(map, 'file:///ws/a/b/x.py'), ab);
    assert.equal(summaryFor(map, 'file:///ws/a/x.py'), a);
  });
  test('a sibling folder with a common prefix is not a match', () => {
    assert.equal(summaryFor(new Map([[ab.folderUri, ab]]), 'file:///ws/a/bc/x.py'), ab, 'falls back to the first summary');
    assert.equal(summaryFor(new Map([[a.folderUri, a], [ab.folderUri, ab]]), 'file:///ws/a/bc/x.py'), a);
  });
  test('no active file: the first', () => {
    assert.equal(summaryFor(map, undefined), a);
    assert.equal(summaryFor(new Map(), undefined), undefined);
  });
});

describe('status reply and runs', () => {
  const reply = {
    folders: [{ uri: 'file:///r', risk_score: 11, lane: 'strong', paths: ['a.py'], refreshing: false, error: null }],
    runs: [
      { run_id: 'r1', status: 'failed', lane: 'fast', escalated: false },
      { run_id: 'r2', status: 'failed', lane: 'strong', escalated: true },
      { run_id: 'r3', status: 'passed', lane: 'fast', escalated: false },
    ],
  };
  test('folders become summaries', () => {
    const [s] = parseStatusReply(reply);
    assert.equal(s.riskScore, 11);
    assert.equal(s.lane, 'strong');
    assert.deepEqual(parseStatusReply({}), []);
  });
  test('only failed, unescalated fast runs can be escalated', () => {
    assert.deepEqual(escalatableRuns(parseRuns(reply)).map((r) => r.runId), ['r1']);
  });
});
