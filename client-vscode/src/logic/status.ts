/**
 * The risk summary the server sends (`routeAgent/riskChanged`, or the reply to
 * `route-agent.riskSummary`), its validation, and what the status bar and its quick pick show.
 */

export interface Contribution {
  signal: string;
  points: number;
  reason: string;
  evidence: string[];
}

export interface RiskSummary {
  folderUri: string;
  riskScore: number | null;
  lane: 'fast' | 'strong' | null;
  alwaysStrong: string[];
  contributions: Contribution[];
  files: string[];
  refreshing: boolean;
  error: string | null;
  policyApproved: boolean | null;
  /** Settings of the repository's policy that were ignored because they would lower a protection. */
  policyWarnings: string[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function strings(value: unknown): string[] {
  if (!Array.isArray(value)) {
    return [];
  }
  return value.map((item) => (typeof item === 'string' ? item : isRecord(item) ? String(item.reason ?? item.signal ?? JSON.stringify(item)) : String(item)));
}

function evidenceList(value: unknown): string[] {
  if (typeof value === 'string') {
    return [value];
  }
  if (!Array.isArray(value)) {
    return [];
  }
  return value.map((item) => {
    if (typeof item === 'string') {
      return item;
    }
    if (isRecord(item)) {
      const where = [item.path, item.line].filter((part) => part !== undefined && part !== null).join(':');
      const detail = item.detail ?? (typeof item.excerpt === 'string' ? JSON.stringify(item.excerpt) : undefined) ?? item.text;
      return [where, detail].filter((part) => part !== undefined && part !== '').join(' ');
    }
    return String(item);
  });
}

/**
 * Accepts the payload in camelCase (the contract) and, leniently, in the CLI's snake_case; returns
 * undefined for anything that is not a summary. Unknown fields are ignored.
 */
export function parseRiskSummary(value: unknown): RiskSummary | undefined {
  if (!isRecord(value)) {
    return undefined;
  }
  const folderUri = value.folderUri ?? value.folder ?? value.uri;
  if (typeof folderUri !== 'string') {
    return undefined;
  }
  const score = value.riskScore ?? value.risk_score;
  const lane = value.lane;
  const contributions: Contribution[] = Array.isArray(value.contributions)
    ? value.contributions.filter(isRecord).map((item) => ({
        signal: String(item.signal ?? ''),
        points: typeof item.points === 'number' ? item.points : Number(item.points ?? 0),
        reason: String(item.reason ?? ''),
        evidence: evidenceList(item.evidence),
      }))
    : [];
  const rawFiles = value.files ?? value.paths;
  const files = Array.isArray(rawFiles) ? rawFiles.map(String) : [];
  const approved = value.policyApproved;
  return {
    folderUri,
    riskScore: typeof score === 'number' && Number.isFinite(score) ? score : null,
    lane: lane === 'fast' || lane === 'strong' ? lane : null,
    alwaysStrong: strings(value.alwaysStrong ?? value.always_strong),
    contributions,
    files,
    refreshing: value.refreshing === true,
    error: typeof value.error === 'string' && value.error !== '' ? value.error : null,
    policyApproved: typeof approved === 'boolean' ? approved : null,
    policyWarnings: Array.isArray(value.policyWarnings) ? value.policyWarnings.map(String) : [],
  };
}

export type ServerState = 'starting' | 'running' | 'stopped' | 'failed';

export interface StatusView {
  text: string;
  tooltip: string;
  /** 'warning' | 'error' map to the status bar's theme background colours. */
  severity: 'none' | 'warning' | 'error';
  /** What a click runs: the log while the server is down (the tooltip says so), else the breakdown. */
  command: 'routeAgent.showLog' | 'routeAgent.showRiskBreakdown';
}

const BREAKDOWN = 'routeAgent.showRiskBreakdown' as const;

/**
 * Server text for a plain-text place (a tooltip, a quick pick row): Markdown code spans become
 * quotes (`git init` -> 'git init'), bold markers go; a tooltip shows them literally otherwise.
 */
export function plainText(text: string): string {
  return text.replace(/`([^`\n]*)`/g, "'$1'").replace(/`/g, "'").replace(/\*\*/g, '');
}

export function laneLabel(lane: RiskSummary['lane']): string {
  return lane === null ? 'no lane' : `${lane} lane`;
}

/** The status bar item for one folder's summary and the server's state. */
export function statusView(summary: RiskSummary | undefined, state: ServerState): StatusView {
  if (state === 'failed') {
    return { text: '$(error) Route Agent', tooltip: 'Route Agent: the server is not running. Click for the log.', severity: 'error', command: 'routeAgent.showLog' };
  }
  if (state === 'starting') {
    return { text: '$(sync~spin) Route Agent', tooltip: 'Route Agent: starting the server…', severity: 'none', command: BREAKDOWN };
  }
  if (state === 'stopped') {
    return { text: '$(circle-slash) Route Agent', tooltip: 'Route Agent: the server is stopped.', severity: 'none', command: BREAKDOWN };
  }
  if (summary === undefined) {
    return { text: '$(shield) Route Agent', tooltip: 'Route Agent: no change set yet.', severity: 'none', command: BREAKDOWN };
  }
  if (summary.error !== null && summary.riskScore === null) {
    return { text: '$(warning) Risk ?', tooltip: plainText(`Route Agent: ${summary.error}`), severity: 'warning', command: BREAKDOWN };
  }
  if (summary.riskScore === null) {
    // A server that has not finished its first refresh (just started or restarted): no score yet,
    // which is not the same as "no change".
    return { text: '$(sync~spin) Route Agent', tooltip: 'Route Agent: computing the risk of the change set…', severity: 'none', command: BREAKDOWN };
  }
  const spin = summary.refreshing ? '$(sync~spin) ' : '';
  const score = String(summary.riskScore);
  const icon = summary.lane === 'strong' ? '$(shield)' : '$(zap)';
  const text = `${spin}${icon} Risk ${score} · ${summary.lane ?? 'no change'}`;
  const lines = [`Route Agent: risk ${score}, ${laneLabel(summary.lane)}`];
  if (summary.alwaysStrong.length > 0) {
    lines.push(`Always strong: ${summary.alwaysStrong.join(', ')}`);
  }
  for (const c of summary.contributions) {
    lines.push(`+${c.points} ${c.signal}: ${c.reason}`);
  }
  if (summary.error !== null) {
    lines.push(`Note: ${summary.error}`);
  }
  for (const warning of summary.policyWarnings) {
    lines.push(`Ignored in the repository's policy: ${warning}`);
  }
  lines.push('Click for the breakdown and actions.');
  const warn = summary.lane === 'strong' || summary.policyWarnings.length > 0;
  return { text, tooltip: plainText(lines.join('\n')), severity: warn ? 'warning' : 'none', command: BREAKDOWN };
}

export interface PickEntry {
  label: string;
  description?: string;
  detail?: string;
  /** A `routeAgent.*` command to run when picked; entries without one are information. */
  command?: string;
  separator?: boolean;
}

/** The quick pick behind the status bar: the breakdown, then the actions. */
export function breakdownEntries(summary: RiskSummary | undefined): PickEntry[] {
  const entries: PickEntry[] = [];
  if (summary !== undefined) {
    entries.push({ label: 'Risk breakdown', separator: true });
    entries.push({
      label: `$(shield) Risk score: ${summary.riskScore ?? '–'}`,
      description: laneLabel(summary.lane),
      detail: summary.files.length > 0 ? `${summary.files.length} file(s): ${summary.files.slice(0, 5).join(', ')}${summary.files.length > 5 ? ', …' : ''}` : undefined,
    });
    for (const reason of summary.alwaysStrong) {
      entries.push({ label: `$(lock) Always strong: ${reason}` });
    }
    for (const c of summary.contributions) {
      entries.push({
        label: `+${c.points} ${c.signal}`,
        description: plainText(c.reason),
        detail: c.evidence.length > 0 ? plainText(c.evidence.slice(0, 3).join('; ')) : undefined,
      });
    }
    if (summary.error !== null) {
      entries.push({ label: `$(warning) ${plainText(summary.error)}` });
    }
    for (const warning of summary.policyWarnings) {
      entries.push({ label: "$(warning) Ignored in the repository's policy", detail: warning });
    }
  }
  entries.push({ label: 'Actions', separator: true });
  entries.push({ label: '$(rocket) Route Task...', command: 'routeAgent.routeTask' });
  entries.push({ label: '$(arrow-up) Escalate to Strong Lane', command: 'routeAgent.escalate' });
  entries.push({ label: '$(graph) Show Ledger Report', command: 'routeAgent.showLedgerReport' });
  entries.push({ label: '$(verified) Approve Policy Commands', command: 'routeAgent.approvePolicyCommands' });
  entries.push({ label: '$(key) Set API Key', command: 'routeAgent.setApiKey' });
  entries.push({ label: '$(debug-restart) Restart Server', command: 'routeAgent.restartServer' });
  entries.push({ label: '$(output) Show Log', command: 'routeAgent.showLog' });
  return entries;
}

/**
 * The reply of `route-agent.status` (`{folders: [{uri, risk_score, lane, paths, error, refreshing}]}`):
 * one summary per folder, without the breakdown (which `route-agent.riskSummary` adds).
 */
export function parseStatusReply(value: unknown): RiskSummary[] {
  if (!isRecord(value) || !Array.isArray(value.folders)) {
    return [];
  }
  return value.folders.map(parseRiskSummary).filter((s): s is RiskSummary => s !== undefined);
}

export interface RunInfo {
  runId: string;
  status: string;
  lane: string;
  escalated: boolean;
}

/** The runs in a `route-agent.status` reply. */
export function parseRuns(value: unknown): RunInfo[] {
  if (!isRecord(value) || !Array.isArray(value.runs)) {
    return [];
  }
  return value.runs.filter(isRecord).map((r) => ({
    runId: String(r.run_id ?? r.runId ?? ''),
    status: String(r.status ?? ''),
    lane: String(r.lane ?? ''),
    escalated: r.escalated === true,
  })).filter((r) => r.runId !== '');
}

/** Runs that can go to the strong lane: a fast attempt that failed and was not escalated yet (newest last). */
export function escalatableRuns(runs: readonly RunInfo[]): RunInfo[] {
  return runs.filter((r) => r.status === 'failed' && r.lane === 'fast' && !r.escalated);
}

/** The summary to show: the folder holding the active editor, else the first one that has any. */
export function summaryFor(summaries: ReadonlyMap<string, RiskSummary>, activeUri: string | undefined): RiskSummary | undefined {
  if (activeUri !== undefined) {
    let best: RiskSummary | undefined;
    for (const [folder, summary] of summaries) {
      const prefix = folder.endsWith('/') ? folder : `${folder}/`;
      if ((activeUri === folder || activeUri.startsWith(prefix)) && (best === undefined || folder.length > best.folderUri.length)) {
        best = summary;
      }
    }
    if (best !== undefined) {
      return best;
    }
  }
  return summaries.values().next().value;
}
