import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { escapeHtml, parseLedgerReport, renderLedgerHtml } from '../../src/logic/ledger';

const CLI_REPORT = {
  ledger: '/state/ledger.sqlite3',
  attempts: 3,
  tasks: 2,
  tasks_passed: 2,
  cost_usd: 0.75,
  lanes: [
    { lane: 'fast', attempts: 2, tasks: 2, passed: 1, pass_rate: 0.5, escalations: 1, escalation_rate: 0.5, latency_p50_s: 3.2, latency_p90_s: 4.0, cost_usd: 0.05, cost_per_attempt_usd: 0.025, reviewed: 0, rejected: 0, review_rejection_rate: null, common_failure: 'tests' },
    { lane: 'strong', attempts: 1, tasks: 1, passed: 1, pass_rate: 1.0, escalations: 0, escalation_rate: 0, latency_p50_s: 20.5, latency_p90_s: 20.5, cost_usd: 0.7, cost_per_attempt_usd: 0.7, reviewed: 1, rejected: 0, review_rejection_rate: 0, common_failure: null },
  ],
};

describe('parseLedgerReport', () => {
  test('reads `route-agent ledger report --json`', () => {
    const report = parseLedgerReport(CLI_REPORT);
    assert.equal(report?.tasksPassed, 2);
    assert.equal(report?.lanes[0].passRate, 0.5);
    assert.equal(report?.lanes[0].latencyP50, 3.2);
    assert.equal(report?.lanes[1].reviewRejectionRate, 0);
    assert.equal(report?.lanes[0].reviewRejectionRate, null);
  });
  test('rejects other shapes', () => {
    assert.equal(parseLedgerReport({ lanes: 'x' }), undefined);
    assert.equal(parseLedgerReport(undefined), undefined);
  });
});

describe('renderLedgerHtml', () => {
  const html = renderLedgerHtml(parseLedgerReport(CLI_REPORT)!, 'NONCE', 'vscode-resource:');
  test('per-lane table', () => {
    assert.match(html, /<td>fast<\/td><td>2<\/td><td>2<\/td><td>50%<\/td><td>50%<\/td><td>3.2 s<\/td>/);
    assert.match(html, /<td>strong<\/td>.*<td>\$0.7000<\/td>/);
  });
  test('charts of pass rate and cost by lane', () => {
    assert.match(html, /aria-label="Pass rate by lane"/);
    assert.match(html, /aria-label="Cost by lane \(USD\)"/);
    // Strong has the highest cost: its bar is full width (260), fast's is proportional.
    assert.match(html, /class="cost"><title>\$0.7000<\/title>/);
    assert.match(html, /width="260.0" height="18" class="cost"/);
    assert.match(html, /width="18.6" height="18" class="cost"/);
  });
  test('no script, strict CSP with the nonce', () => {
    assert.ok(!/<script/i.test(html));
    assert.match(html, /default-src 'none'/);
    assert.match(html, /<style nonce="NONCE">/);
  });
  test('escapes text from the ledger', () => {
    const evil = parseLedgerReport({ ...CLI_REPORT, ledger: '<img src=x onerror=alert(1)>', lanes: [{ ...CLI_REPORT.lanes[0], lane: '<b>x</b>' }] })!;
    const out = renderLedgerHtml(evil, 'N', 'c');
    assert.ok(!out.includes('<img src=x'));
    assert.ok(!out.includes('<b>x</b>'));
    assert.equal(escapeHtml(`<"'&>`), '&lt;&quot;&#39;&amp;&gt;');
  });
  test('empty ledger says how to fill it', () => {
    const out = renderLedgerHtml(parseLedgerReport({ ...CLI_REPORT, lanes: [] })!, 'N', 'c');
    assert.match(out, /No attempts recorded yet/);
    assert.ok(!out.includes('<table>'));
  });
});
