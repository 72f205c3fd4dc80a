/**
 * The ledger report (reply of `route-agent.ledgerReport`, or `route-agent ledger report --json`)
 * rendered as a self-contained HTML page: the per-lane table and SVG bar charts of pass rate and
 * cost by lane. No script runs in the page; the CSP allows only the page's own nonce'd style.
 */

export interface LaneFigures {
  lane: string;
  attempts: number;
  tasks: number;
  passRate: number;
  escalationRate: number;
  latencyP50: number | null;
  latencyP90: number | null;
  costUsd: number;
  reviewRejectionRate: number | null;
  commonFailure: string | null;
}

export interface LedgerReport {
  ledger: string;
  attempts: number;
  tasks: number;
  tasksPassed: number;
  costUsd: number;
  lanes: LaneFigures[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function num(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function optNum(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function field(record: Record<string, unknown>, snake: string, camel: string): unknown {
  return record[camel] ?? record[snake];
}

/** snake_case (CLI) or camelCase (LSP command) -> one shape. */
export function parseLedgerReport(value: unknown): LedgerReport | undefined {
  if (!isRecord(value) || !Array.isArray(value.lanes)) {
    return undefined;
  }
  return {
    ledger: String(value.ledger ?? ''),
    attempts: num(value.attempts),
    tasks: num(value.tasks),
    tasksPassed: num(field(value, 'tasks_passed', 'tasksPassed')),
    costUsd: num(field(value, 'cost_usd', 'costUsd')),
    lanes: value.lanes.filter(isRecord).map((lane) => ({
      lane: String(lane.lane ?? '?'),
      attempts: num(lane.attempts),
      tasks: num(lane.tasks),
      passRate: num(field(lane, 'pass_rate', 'passRate')),
      escalationRate: num(field(lane, 'escalation_rate', 'escalationRate')),
      latencyP50: optNum(field(lane, 'latency_p50_s', 'latencyP50S')),
      latencyP90: optNum(field(lane, 'latency_p90_s', 'latencyP90S')),
      costUsd: num(field(lane, 'cost_usd', 'costUsd')),
      reviewRejectionRate: optNum(field(lane, 'review_rejection_rate', 'reviewRejectionRate')),
      commonFailure: typeof (lane.common_failure ?? lane.commonFailure) === 'string' ? String(lane.common_failure ?? lane.commonFailure) : null,
    })),
  };
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch] ?? ch);
}

const pct = (value: number | null): string => (value === null ? '–' : `${Math.round(value * 100)}%`);
const secs = (value: number | null): string => (value === null ? '–' : `${value.toFixed(1)} s`);
const usd = (value: number): string => `$${value.toFixed(4)}`;

interface Bar {
  label: string;
  value: number;
  text: string;
}

/** One horizontal bar chart as SVG; `max` scales the bars (at least 1e-9 so zero data draws). */
function barChart(title: string, bars: Bar[], max: number, cssClass: string): string {
  const rowHeight = 26;
  const labelWidth = 90;
  const barWidth = 260;
  const height = bars.length * rowHeight + 30;
  const scale = Math.max(max, 1e-9);
  const rows = bars
    .map((bar, i) => {
      const y = 24 + i * rowHeight;
      const w = Math.max(0, Math.min(1, bar.value / scale)) * barWidth;
      return (
        `<text x="0" y="${y + 14}" class="label">${escapeHtml(bar.label)}</text>` +
        `<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="18" class="${cssClass}"><title>${escapeHtml(bar.text)}</title></rect>` +
        `<text x="${(labelWidth + w + 6).toFixed(1)}" y="${y + 14}" class="value">${escapeHtml(bar.text)}</text>`
      );
    })
    .join('');
  return (
    `<svg role="img" aria-label="${escapeHtml(title)}" width="${labelWidth + barWidth + 90}" height="${height}" xmlns="http://www.w3.org/2000/svg">` +
    `<text x="0" y="14" class="title">${escapeHtml(title)}</text>${rows}</svg>`
  );
}

export function renderLedgerHtml(report: LedgerReport, nonce: string, cspSource: string): string {
  const rows = report.lanes
    .map(
      (l) =>
        `<tr><td>${escapeHtml(l.lane)}</td><td>${l.attempts}</td><td>${l.tasks}</td><td>${pct(l.passRate)}</td>` +
        `<td>${pct(l.escalationRate)}</td><td>${secs(l.latencyP50)}</td><td>${secs(l.latencyP90)}</td>` +
        `<td>${usd(l.costUsd)}</td><td>${pct(l.reviewRejectionRate)}</td><td>${escapeHtml(l.commonFailure ?? '–')}</td></tr>`,
    )
    .join('\n');
  const body =
    report.lanes.length === 0
      ? `<p class="empty">No attempts recorded yet. Route a task (Route Agent: Route Task...) and the lanes' figures appear here.</p>`
      : `<table><thead><tr><th>lane</th><th>attempts</th><th>tasks</th><th>pass rate</th><th>escalation</th>` +
        `<th>latency p50</th><th>latency p90</th><th>cost</th><th>review rejection</th><th>common failure</th></tr></thead>` +
        `<tbody>\n${rows}\n</tbody></table>` +
        `<div class="charts">` +
        barChart('Pass rate by lane', report.lanes.map((l) => ({ label: l.lane, value: l.passRate, text: pct(l.passRate) })), 1, 'pass') +
        barChart('Cost by lane (USD)', report.lanes.map((l) => ({ label: l.lane, value: l.costUsd, text: usd(l.costUsd) })), Math.max(...report.lanes.map((l) => l.costUsd)), 'cost') +
        `</div>`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src ${cspSource} data:; style-src 'nonce-${nonce}';">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Route Agent: ledger</title>
<style nonce="${nonce}">
body { font-family: var(--vscode-font-family); color: var(--vscode-foreground); padding: 0 16px; }
table { border-collapse: collapse; margin: 12px 0 20px; }
th, td { border-bottom: 1px solid var(--vscode-panel-border, #8884); padding: 4px 10px; text-align: right; }
th:first-child, td:first-child, td:last-child, th:last-child { text-align: left; }
.summary { opacity: 0.8; }
.charts { display: flex; flex-wrap: wrap; gap: 32px; }
svg text { fill: var(--vscode-foreground); font-size: 12px; }
svg .title { font-weight: bold; }
rect.pass { fill: var(--vscode-charts-green, #3a3); }
rect.cost { fill: var(--vscode-charts-blue, #36c); }
</style></head>
<body>
<h2>Route Agent ledger</h2>
<p class="summary">${report.tasks} task(s), ${report.tasksPassed} passed, ${report.attempts} attempt(s), total ${usd(report.costUsd)} — ${escapeHtml(report.ledger)}</p>
${body}
</body></html>`;
}
