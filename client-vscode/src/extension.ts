/** Route Agent for VS Code: starts the route-agent language server and adds the risk status and commands. */
import * as vscode from 'vscode';

import { registerCommands } from './commands';
import { RiskStatus } from './risk';
import { ServerManager } from './server';

let server: ServerManager | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const log = vscode.window.createOutputChannel('Route Agent', { log: true });
  context.subscriptions.push(log);
  server = new ServerManager(context, log);
  const risk = new RiskStatus(server);
  context.subscriptions.push(server, risk);
  registerCommands(context, server, risk);
  if (!vscode.workspace.isTrusted) {
    log.info('Untrusted workspace: risk only; workspace settings for the Python path, policy, state directory and sandbox are ignored, and no policy command runs.');
  }
  await server.start();
}

export async function deactivate(): Promise<void> {
  await server?.stop();
  server = undefined;
}
