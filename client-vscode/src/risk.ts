/**
 * The status bar item: the current change set's risk and lane, kept current from the server's
 * `routeAgent/riskChanged` notifications and, when the server offers it, by asking
 * `route-agent.riskSummary` after edits and editor switches.
 */
import * as vscode from 'vscode';
import { LanguageClient } from 'vscode-languageclient/node';

import { breakdownEntries, parseRiskSummary, parseStatusReply, RiskSummary, statusView, summaryFor } from './logic/status';
import { ServerManager } from './server';

export const RISK_NOTIFICATION = 'routeAgent/riskChanged';
export const RISK_SUMMARY_COMMAND = 'route-agent.riskSummary';
export const STATUS_COMMAND = 'route-agent.status';
const REFRESH_POLL_MS = 500;
const MAX_REFRESH_POLLS = 30;

export class RiskStatus implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly summaries = new Map<string, RiskSummary>();
  private readonly disposables: vscode.Disposable[] = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private pollGeneration = 0;
  private refreshPolls = 0;

  constructor(private readonly server: ServerManager) {
    this.item = vscode.window.createStatusBarItem('routeAgent.risk', vscode.StatusBarAlignment.Left, 50);
    this.item.name = 'Route Agent Risk';
    this.item.command = 'routeAgent.showRiskBreakdown';
    this.disposables.push(
      this.item,
      server.onDidStartClient((client) => this.attach(client)),
      server.onDidChangeState((state) => {
        if (state !== 'running') {
          this.summaries.clear();
        } else {
          this.schedulePoll(0);
        }
        this.render();
      }),
      vscode.window.onDidChangeActiveTextEditor(() => {
        this.render();
        this.schedulePoll(0);
      }),
      vscode.workspace.onDidChangeTextDocument((event) => {
        if (event.document.uri.scheme === 'file' && event.contentChanges.length > 0) {
          this.schedulePoll(this.server.resolve(event.document.uri).settings.debounceMs + 400);
        }
      }),
      vscode.workspace.onDidSaveTextDocument(() => this.schedulePoll(200)),
      vscode.workspace.onDidChangeConfiguration((event) => {
        if (event.affectsConfiguration('routeAgent.showStatusBar')) {
          this.render();
        }
      }),
    );
    this.render();
  }

  private attach(client: LanguageClient): void {
    this.disposables.push(
      client.onNotification(RISK_NOTIFICATION, (payload: unknown) => {
        const summary = parseRiskSummary(payload);
        if (summary === undefined) {
          this.server.log.warn(`Ignored a malformed ${RISK_NOTIFICATION} notification`);
          return;
        }
        this.update(summary);
      }),
    );
  }

  update(summary: RiskSummary): void {
    this.summaries.set(summary.folderUri, summary);
    this.render();
  }

  current(): RiskSummary | undefined {
    return summaryFor(this.summaries, vscode.window.activeTextEditor?.document.uri.toString());
  }

  private schedulePoll(delayMs: number): void {
    if (this.pollTimer !== undefined) {
      clearTimeout(this.pollTimer);
    }
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      void this.poll();
    }, delayMs);
  }

  /**
   * Ask the server: `route-agent.riskSummary` (with the breakdown) for the active editor's folder,
   * else `route-agent.status` (score, lane and files of every folder). While the server is still
   * recomputing, ask again shortly (bounded), so the item settles on the fresh value.
   */
  async poll(): Promise<void> {
    if (this.server.currentState !== 'running') {
      return;
    }
    const generation = ++this.pollGeneration;
    const found: RiskSummary[] = [];
    try {
      if (this.server.supports(RISK_SUMMARY_COMMAND)) {
        const active = vscode.window.activeTextEditor?.document.uri;
        const targets = active && vscode.workspace.getWorkspaceFolder(active) ? [active] : (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri);
        for (const uri of targets) {
          const summary = parseRiskSummary(await this.server.executeCommand(RISK_SUMMARY_COMMAND, { uri: uri.toString() }));
          if (summary !== undefined) {
            found.push(summary);
          }
        }
      } else if (this.server.supports(STATUS_COMMAND)) {
        found.push(...parseStatusReply(await this.server.executeCommand(STATUS_COMMAND, {})));
      } else {
        return;
      }
    } catch (error) {
      this.server.log.debug(`risk poll: ${String(error)}`);
      return;
    }
    if (generation !== this.pollGeneration) {
      return;
    }
    for (const summary of found) {
      const previous = this.summaries.get(summary.folderUri);
      // The status reply has no breakdown: keep the last one while score and lane are unchanged.
      if (previous && summary.contributions.length === 0 && previous.riskScore === summary.riskScore && previous.lane === summary.lane) {
        summary.contributions = previous.contributions;
        summary.alwaysStrong = previous.alwaysStrong;
      }
      this.update(summary);
    }
    if (found.some((s) => s.refreshing) && this.refreshPolls < MAX_REFRESH_POLLS) {
      this.refreshPolls++;
      this.schedulePoll(REFRESH_POLL_MS);
    } else {
      this.refreshPolls = 0;
    }
  }

  private render(): void {
    if (!this.server.resolve().settings.showStatusBar) {
      this.item.hide();
      return;
    }
    const view = statusView(this.current(), this.server.currentState);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.command = view.command;
    this.item.accessibilityInformation = { label: view.tooltip.split('\n')[0] };
    this.item.backgroundColor =
      view.severity === 'error'
        ? new vscode.ThemeColor('statusBarItem.errorBackground')
        : view.severity === 'warning'
          ? new vscode.ThemeColor('statusBarItem.warningBackground')
          : undefined;
    this.item.show();
  }

  /** The quick pick behind the status bar item: the breakdown, then the actions. */
  async showBreakdown(): Promise<void> {
    await this.poll();
    const entries = breakdownEntries(this.current());
    type Item = vscode.QuickPickItem & { command?: string };
    const items: Item[] = entries.map((entry) =>
      entry.separator
        ? { label: entry.label, kind: vscode.QuickPickItemKind.Separator }
        : { label: entry.label, description: entry.description, detail: entry.detail, command: entry.command },
    );
    const pick = await vscode.window.showQuickPick(items, { title: 'Route Agent: risk of the current change set', matchOnDescription: true, matchOnDetail: true });
    if (pick?.command) {
      await vscode.commands.executeCommand(pick.command);
    }
  }

  dispose(): void {
    if (this.pollTimer !== undefined) {
      clearTimeout(this.pollTimer);
    }
    for (const d of this.disposables) {
      d.dispose();
    }
  }
}
