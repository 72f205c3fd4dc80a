/** The `routeAgent.*` commands a user runs; the work is done by the server's `route-agent.*` commands. */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';

import { approve, ApprovalStore, commandLines, commandsHash, diffCommands, parsePolicyCommands, PolicyCommands } from './logic/approval';
import { parseLedgerReport, renderLedgerHtml } from './logic/ledger';
import { KNOWN_PROVIDERS, secretKey, validEnvVarName } from './logic/secrets';
import { escalatableRuns, parseRuns } from './logic/status';
import { RiskStatus } from './risk';
import { APPROVALS_KEY, CUSTOM_KEY_NAMES, ServerManager } from './server';

export const SERVER_COMMANDS = {
  routeTask: 'route-agent.routeTask',
  routeFix: 'route-agent.routeFix',
  status: 'route-agent.status',
  escalate: 'route-agent.escalate',
  ledgerReport: 'route-agent.ledgerReport',
  policyCommands: 'route-agent.policyCommands',
  approvePolicy: 'route-agent.approvePolicy',
  allowUnsandboxed: 'route-agent.allowUnsandboxed',
} as const;

async function pickFolder(placeHolder: string): Promise<vscode.WorkspaceFolder | undefined> {
  const active = vscode.window.activeTextEditor?.document.uri;
  const fromEditor = active ? vscode.workspace.getWorkspaceFolder(active) : undefined;
  if (fromEditor) {
    return fromEditor;
  }
  const folders = vscode.workspace.workspaceFolders ?? [];
  if (folders.length <= 1) {
    return folders[0];
  }
  return vscode.window.showWorkspaceFolderPick({ placeHolder });
}

function reportFailure(server: ServerManager, what: string, error: unknown): void {
  const text = error instanceof Error ? error.message : String(error);
  server.log.error(`${what}: ${text}`);
  void vscode.window.showErrorMessage(`Route Agent: ${what} failed: ${text}`);
}

function requireCommand(server: ServerManager, command: string): boolean {
  if (server.currentState !== 'running') {
    void vscode.window.showWarningMessage('Route Agent: the server is not running. Run "Route Agent: Restart Server" or see the log.');
    return false;
  }
  if (!server.supports(command)) {
    void vscode.window.showWarningMessage(`Route Agent: this route-agent server does not offer ${command}; upgrade route-agent.`);
    server.log.warn(`The server does not advertise ${command}`);
    return false;
  }
  return true;
}

export async function routeTask(server: ServerManager, context: vscode.ExtensionContext): Promise<void> {
  // `route-agent.routeTask` is the contract; servers that only have the code action's
  // `route-agent.routeFix` take the same arguments.
  const command = server.supports(SERVER_COMMANDS.routeTask) ? SERVER_COMMANDS.routeTask : SERVER_COMMANDS.routeFix;
  if (!requireCommand(server, command)) {
    return;
  }
  const folder = await pickFolder('Folder to route the task in');
  if (!folder) {
    return;
  }
  const brief = await vscode.window.showInputBox({
    title: 'Route Agent: Route Task',
    prompt: 'Describe the task. Route Agent scores its risk, picks a lane, verifies the patch and offers it to you.',
    placeHolder: 'e.g. Reject expired tokens in verify_token',
    ignoreFocusOut: true,
    validateInput: (value) => (value.trim() === '' ? 'Describe the task in a sentence or two.' : value.length > 16384 ? 'Keep the brief under 16 KB.' : undefined),
  });
  if (brief === undefined) {
    return;
  }
  if (!(await ensureApproved(server, context, folder))) {
    return;
  }
  const active = vscode.window.activeTextEditor?.document.uri;
  const inFolder = active && vscode.workspace.getWorkspaceFolder(active)?.uri.toString() === folder.uri.toString() ? active : undefined;
  try {
    await server.executeCommand(command, {
      brief: brief.trim(),
      folder: folder.uri.toString(),
      folderUri: folder.uri.toString(),
      uri: inFolder?.toString(),
      path: inFolder ? vscode.workspace.asRelativePath(inFolder, false) : undefined,
      lane: server.resolve(folder.uri).settings.lane,
    });
  } catch (error) {
    reportFailure(server, 'Route Task', error);
  }
}

export async function escalate(server: ServerManager): Promise<void> {
  if (!requireCommand(server, SERVER_COMMANDS.escalate)) {
    return;
  }
  const folder = await pickFolder('Folder whose last task to escalate');
  if (!folder) {
    return;
  }
  try {
    // The server escalates a run by id; the candidates are failed fast runs not escalated yet.
    let runId: string | undefined;
    if (server.supports(SERVER_COMMANDS.status)) {
      const runs = escalatableRuns(parseRuns(await server.executeCommand(SERVER_COMMANDS.status, {})));
      if (runs.length === 0) {
        void vscode.window.showInformationMessage('Route Agent: no failed fast-lane run to escalate.');
        return;
      }
      runId = runs[runs.length - 1].runId;
      if (runs.length > 1) {
        const pick = await vscode.window.showQuickPick(
          [...runs].reverse().map((r) => ({ label: r.runId, description: `${r.lane} lane, ${r.status}` })),
          { title: 'Route Agent: escalate which run?' },
        );
        if (!pick) {
          return;
        }
        runId = pick.label;
      }
    }
    await server.executeCommand(SERVER_COMMANDS.escalate, { run_id: runId, runId, folder: folder.uri.toString(), folderUri: folder.uri.toString() });
  } catch (error) {
    reportFailure(server, 'Escalate to Strong Lane', error);
  }
}

let ledgerPanel: vscode.WebviewPanel | undefined;

async function ledgerData(server: ServerManager, folder: vscode.WorkspaceFolder | undefined): Promise<unknown> {
  if (server.currentState === 'running' && server.supports(SERVER_COMMANDS.ledgerReport)) {
    return server.executeCommand(SERVER_COMMANDS.ledgerReport, { folderUri: folder?.uri.toString() });
  }
  // No server command: the same report from the CLI, with the server's interpreter.
  const interpreter = server.interpreter;
  if (!interpreter) {
    throw new Error('no Python interpreter chosen yet; see the log');
  }
  const stateDir = server.resolve(folder?.uri).settings.stateDir;
  return new Promise((resolve, reject) => {
    execFile(
      interpreter.command,
      [...interpreter.args, '-m', 'route_agent', 'ledger', 'report', '--json'],
      { timeout: 30_000, cwd: folder?.uri.fsPath, env: { ...process.env, ...(stateDir ? { ROUTE_AGENT_STATE_DIR: stateDir } : {}) }, maxBuffer: 8 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`route-agent ledger report failed: ${String(stderr).trim() || error.message}`));
          return;
        }
        try {
          resolve(JSON.parse(String(stdout)));
        } catch (parseError) {
          reject(new Error(`route-agent ledger report printed no JSON: ${String(parseError)}`));
        }
      },
    );
  });
}

export async function showLedgerReport(server: ServerManager): Promise<void> {
  const folder = await pickFolder('Folder whose ledger to show');
  let report;
  try {
    report = parseLedgerReport(await ledgerData(server, folder));
  } catch (error) {
    reportFailure(server, 'Show Ledger Report', error);
    return;
  }
  if (!report) {
    reportFailure(server, 'Show Ledger Report', new Error('the ledger report had an unexpected shape'));
    return;
  }
  if (!ledgerPanel) {
    ledgerPanel = vscode.window.createWebviewPanel('routeAgent.ledger', 'Route Agent: Ledger', vscode.ViewColumn.Active, { enableScripts: false });
    ledgerPanel.onDidDispose(() => (ledgerPanel = undefined));
  }
  const nonce = randomBytes(16).toString('base64');
  ledgerPanel.webview.html = renderLedgerHtml(report, nonce, ledgerPanel.webview.cspSource);
  ledgerPanel.reveal();
}

export async function setApiKey(server: ServerManager, context: vscode.ExtensionContext): Promise<void> {
  type Item = vscode.QuickPickItem & { envVar?: string; action?: 'custom' | 'remove' };
  const custom = context.globalState.get<string[]>(CUSTOM_KEY_NAMES, []);
  const items: Item[] = [
    ...KNOWN_PROVIDERS.map((p) => ({ label: p.label, description: p.envVar, envVar: p.envVar })),
    ...custom.map((name) => ({ label: name, description: 'OpenAI-compatible server (api_key_env)', envVar: name })),
    { label: 'Other OpenAI-compatible server…', description: 'the api_key_env named in your policy', action: 'custom' as const },
    { label: 'Remove a stored key…', action: 'remove' as const },
  ];
  const pick = await vscode.window.showQuickPick(items, { title: 'Route Agent: Set API Key', placeHolder: 'Provider' });
  if (!pick) {
    return;
  }
  if (pick.action === 'remove') {
    const names = [...KNOWN_PROVIDERS.map((p) => p.envVar), ...custom];
    const stored: string[] = [];
    for (const name of names) {
      if (await context.secrets.get(secretKey(name))) {
        stored.push(name);
      }
    }
    if (stored.length === 0) {
      void vscode.window.showInformationMessage('Route Agent: no API key is stored.');
      return;
    }
    const remove = await vscode.window.showQuickPick(stored, { title: 'Route Agent: remove which key?' });
    if (remove) {
      await context.secrets.delete(secretKey(remove));
      server.log.info(`API key ${remove} removed from SecretStorage; restarting the server.`);
      await server.restart();
    }
    return;
  }
  let envVar = pick.envVar;
  if (pick.action === 'custom') {
    envVar = await vscode.window.showInputBox({
      title: 'Route Agent: environment variable for the key',
      prompt: "The api_key_env of the model in your policy",
      placeHolder: 'MY_SERVER_API_KEY',
      validateInput: (value) => validEnvVarName(value.trim()),
    });
    envVar = envVar?.trim();
  }
  if (!envVar) {
    return;
  }
  const value = await vscode.window.showInputBox({
    title: `Route Agent: ${envVar}`,
    prompt: 'Stored in VS Code SecretStorage and handed to the route-agent server as this environment variable. Never written to settings or logs.',
    password: true,
    ignoreFocusOut: true,
    validateInput: (text) => (text.trim() === '' ? 'Paste the key.' : /\s/.test(text.trim()) ? 'A key has no spaces.' : undefined),
  });
  if (value === undefined) {
    return;
  }
  await context.secrets.store(secretKey(envVar), value.trim());
  if (!KNOWN_PROVIDERS.some((p) => p.envVar === envVar) && !custom.includes(envVar)) {
    await context.globalState.update(CUSTOM_KEY_NAMES, [...custom, envVar]);
  }
  server.log.info(`API key ${envVar} stored in SecretStorage; restarting the server so it has it.`);
  await server.restart();
  void vscode.window.showInformationMessage(`Route Agent: ${envVar} stored; the server was restarted with it.`);
}

async function fetchPolicyCommands(server: ServerManager, folder: vscode.WorkspaceFolder): Promise<PolicyCommands> {
  const reply = await server.executeCommand(SERVER_COMMANDS.policyCommands, { folderUri: folder.uri.toString() });
  const parsed = parsePolicyCommands(reply);
  if (!parsed) {
    throw new Error('the server sent policy commands in an unexpected shape');
  }
  const ours = commandsHash(parsed.commands);
  if (ours !== parsed.sha256) {
    throw new Error(`the server's hash ${parsed.sha256.slice(0, 12)}… does not match the commands (${ours.slice(0, 12)}…); not approving`);
  }
  return parsed;
}

/** Shows the commands and their SHA-256 (and what changed since the last approval); true when approved. */
async function askApproval(server: ServerManager, context: vscode.ExtensionContext, folder: vscode.WorkspaceFolder, policy: PolicyCommands): Promise<boolean> {
  const store = context.globalState.get<ApprovalStore>(APPROVALS_KEY, {});
  const previous = store[folder.uri.toString()];
  const lines = commandLines(policy.commands);
  const detail: string[] = [`Policy: ${policy.policyPath ?? 'built-in default'}`, `SHA-256: ${policy.sha256}`, '', ...lines];
  if (previous && previous.sha256 !== policy.sha256) {
    const diff = diffCommands(previous.commands, policy.commands);
    detail.push('', 'Changed since your last approval:', ...diff.added.map((l) => `+ ${l}`), ...diff.removed.map((l) => `- ${l}`));
  }
  const choice = await vscode.window.showWarningMessage(
    `Route Agent: allow these ${policy.commands.length} verification command(s) to run in ${folder.name}?`,
    { modal: true, detail: detail.join('\n') },
    'Approve',
  );
  if (choice !== 'Approve') {
    server.log.info(`Policy commands for ${folder.name} not approved.`);
    return false;
  }
  await context.globalState.update(APPROVALS_KEY, approve(store, folder.uri.toString(), policy.commands, new Date()));
  await server.executeCommand(SERVER_COMMANDS.approvePolicy, { folderUri: folder.uri.toString(), sha256: policy.sha256 });
  server.log.info(`Policy commands for ${folder.name} approved (sha256 ${policy.sha256}).`);
  return true;
}

/** Before routing: approved already, or ask now. Untrusted workspaces never run policy commands. */
async function ensureApproved(server: ServerManager, context: vscode.ExtensionContext, folder: vscode.WorkspaceFolder): Promise<boolean> {
  if (!vscode.workspace.isTrusted || !server.supports(SERVER_COMMANDS.policyCommands)) {
    // Untrusted: the server runs no policy command and says so; nothing to approve here.
    return true;
  }
  try {
    const policy = await fetchPolicyCommands(server, folder);
    if (policy.approved || policy.commands.length === 0) {
      return true;
    }
    return await askApproval(server, context, folder, policy);
  } catch (error) {
    reportFailure(server, 'Approve Policy Commands', error);
    return false;
  }
}

export async function approvePolicyCommands(server: ServerManager, context: vscode.ExtensionContext): Promise<void> {
  if (!vscode.workspace.isTrusted) {
    const pick = await vscode.window.showWarningMessage(
      'Route Agent: this workspace is not trusted, so its policy commands never run. Trust it first to approve them.',
      'Manage Workspace Trust',
    );
    if (pick) {
      await vscode.commands.executeCommand('workbench.trust.manage');
    }
    return;
  }
  if (!requireCommand(server, SERVER_COMMANDS.policyCommands)) {
    return;
  }
  const folder = await pickFolder('Folder whose policy commands to approve');
  if (!folder) {
    return;
  }
  try {
    const policy = await fetchPolicyCommands(server, folder);
    if (policy.commands.length === 0) {
      void vscode.window.showInformationMessage('Route Agent: the policy declares no verification commands.');
      return;
    }
    if (await askApproval(server, context, folder, policy)) {
      void vscode.window.showInformationMessage(`Route Agent: ${policy.commands.length} policy command(s) approved (SHA-256 ${policy.sha256.slice(0, 12)}…).`);
    }
  } catch (error) {
    reportFailure(server, 'Approve Policy Commands', error);
  }
}

/** Accept, once per repository, that its checks and tests run without the sandbox (after a modal warning). */
export async function allowUnsandboxedChecks(server: ServerManager): Promise<void> {
  if (!vscode.workspace.isTrusted) {
    void vscode.window.showWarningMessage('Route Agent: this workspace is not trusted, so none of its code runs.');
    return;
  }
  if (!requireCommand(server, SERVER_COMMANDS.allowUnsandboxed)) {
    return;
  }
  const folder = await pickFolder('Folder whose checks may run without the sandbox');
  if (!folder) {
    return;
  }
  const allow = 'Allow Unsandboxed Checks';
  const pick = await vscode.window.showWarningMessage(
    `Route Agent: without the sandbox, the checks, tests and conftest of ${folder.name} run as you: they can read your files and the keys ` +
      'your shell exported, and reach the network. Every such run still says NOT SANDBOXED.',
    { modal: true },
    allow,
  );
  if (pick !== allow) {
    return;
  }
  try {
    await server.executeCommand(SERVER_COMMANDS.allowUnsandboxed, { folderUri: folder.uri.toString() });
    void vscode.window.showInformationMessage(`Route Agent: unsandboxed checks allowed for ${folder.name}.`);
  } catch (error) {
    reportFailure(server, 'Allow Unsandboxed Checks', error);
  }
}

export function registerCommands(context: vscode.ExtensionContext, server: ServerManager, risk: RiskStatus): void {
  context.subscriptions.push(
    vscode.commands.registerCommand('routeAgent.restartServer', () => server.restart(true)),
    vscode.commands.registerCommand('routeAgent.selectInterpreter', () => server.selectInterpreter()),
    vscode.commands.registerCommand('routeAgent.routeTask', () => routeTask(server, context)),
    vscode.commands.registerCommand('routeAgent.escalate', () => escalate(server)),
    vscode.commands.registerCommand('routeAgent.showLedgerReport', () => showLedgerReport(server)),
    vscode.commands.registerCommand('routeAgent.setApiKey', () => setApiKey(server, context)),
    vscode.commands.registerCommand('routeAgent.approvePolicyCommands', () => approvePolicyCommands(server, context)),
    vscode.commands.registerCommand('routeAgent.allowUnsandboxedChecks', () => allowUnsandboxedChecks(server)),
    vscode.commands.registerCommand('routeAgent.showRiskBreakdown', () => risk.showBreakdown()),
    vscode.commands.registerCommand('routeAgent.showLog', () => server.log.show()),
  );
}
