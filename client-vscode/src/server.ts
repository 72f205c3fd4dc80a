/**
 * Starting, restarting and stopping the language server (`<python> -m route_agent serve`).
 *
 * Before each start the chosen interpreter is asked `-m route_agent --version`; when route-agent is
 * missing or too old the user gets one message with the exact install command instead of a crash
 * loop. Restarts go through a queue, so a burst of requests restarts once more, not once each.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  RevealOutputChannelOn,
  ServerOptions,
  State,
  Trace,
} from 'vscode-languageclient/node';

import { checkServer, chooseInterpreter, describeInterpreter, installCommand, Interpreter, problemMessage, serverCommand, VersionProbe } from './logic/interpreter';
import { RestartQueue } from './logic/restartQueue';
import { KNOWN_PROVIDERS, redact, secretKey, serverEnvironment } from './logic/secrets';
import { needsRestart, ResolvedSettings, resolveSettings, SECTION, serverOptions, traceLevel } from './logic/settings';
import { ServerState } from './logic/status';
import { NotificationProgressFeature } from './progress';
import { activeInterpreter, onInterpreterChanged } from './python';

export const APPROVALS_KEY = 'routeAgent.policyApprovals';
export const CUSTOM_KEY_NAMES = 'routeAgent.customKeyNames';
const VERSION_TIMEOUT_MS = 30_000;

export class ServerManager implements vscode.Disposable {
  client: LanguageClient | undefined;
  interpreter: Interpreter | undefined;
  private state: ServerState = 'stopped';
  private readonly stateEmitter = new vscode.EventEmitter<ServerState>();
  readonly onDidChangeState = this.stateEmitter.event;
  private readonly clientEmitter = new vscode.EventEmitter<LanguageClient>();
  /** Fires with each newly started client (notification handlers are registered on it). */
  readonly onDidStartClient = this.clientEmitter.event;
  private readonly queue = new RestartQueue(() => this.restartNow());
  private readonly disposables: vscode.Disposable[] = [];
  private settings: ResolvedSettings;
  private secretsInUse: string[] = [];
  private lastProblem: string | undefined;

  constructor(
    private readonly context: vscode.ExtensionContext,
    readonly log: vscode.LogOutputChannel,
  ) {
    this.settings = this.resolve().settings;
    this.disposables.push(
      this.stateEmitter,
      this.clientEmitter,
      log.onDidChangeLogLevel((level) => void this.onLogLevel(level)),
      vscode.workspace.onDidChangeConfiguration((event) => {
        if (event.affectsConfiguration(SECTION)) {
          void this.onSettingsChanged();
        }
      }),
      vscode.workspace.onDidGrantWorkspaceTrust(() => {
        this.log.info('Workspace trusted: restarting the server with the workspace settings.');
        void this.restart();
      }),
      vscode.workspace.onDidChangeWorkspaceFolders(() => void this.pushConfiguration()),
    );
    void onInterpreterChanged(() => {
      if (!this.settings.pythonPath) {
        this.log.info('The Python extension changed the interpreter: restarting the server.');
        void this.restart();
      }
    }).then((disposable) => disposable && this.disposables.push(disposable));
  }

  get currentState(): ServerState {
    return this.state;
  }

  private setState(state: ServerState): void {
    this.state = state;
    this.stateEmitter.fire(state);
  }

  resolve(resource?: vscode.Uri) {
    const folder = resource ? vscode.workspace.getWorkspaceFolder(resource) : vscode.workspace.workspaceFolders?.[0];
    const config = vscode.workspace.getConfiguration(SECTION, folder?.uri ?? null);
    return resolveSettings((key) => config.inspect(key), vscode.workspace.isTrusted, {
      workspaceFolder: folder?.uri.fsPath,
      home: process.env.HOME ?? process.env.USERPROFILE,
    });
  }

  /** The options the server gets for `scope` (initializationOptions and workspace/configuration). */
  optionsFor(scope?: vscode.Uri): Record<string, unknown> {
    const { settings } = this.resolve(scope);
    return serverOptions({ settings, logLevel: this.log.logLevel, trusted: vscode.workspace.isTrusted });
  }

  start(): Promise<void> {
    return this.queue.request();
  }

  restart(): Promise<void> {
    return this.queue.request();
  }

  async executeCommand<T = unknown>(command: string, args: Record<string, unknown>): Promise<T> {
    const client = this.client;
    if (!client || client.state !== State.Running) {
      throw new Error('the route-agent server is not running');
    }
    return (await client.sendRequest(ExecuteCommandRequest.type, { command, arguments: [args] })) as T;
  }

  /** Whether the running server offers `command` through workspace/executeCommand. */
  supports(command: string): boolean {
    return this.client?.initializeResult?.capabilities.executeCommandProvider?.commands.includes(command) ?? false;
  }

  private async stopClient(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) {
      try {
        await client.stop(4000);
      } catch (error) {
        this.log.warn(`Stopping the server: ${String(error)}`);
      }
      await client.dispose();
    }
  }

  private async restartNow(): Promise<void> {
    await this.stopClient();
    this.setState('starting');
    const resolution = this.resolve();
    this.settings = resolution.settings;
    for (const problem of resolution.problems) {
      this.log.warn(problem);
    }
    const folder = vscode.workspace.workspaceFolders?.[0];
    const fromExtension = this.settings.pythonPath ? undefined : await activeInterpreter(folder?.uri, this.log);
    const interpreter = chooseInterpreter(this.settings.pythonPath, fromExtension);
    this.interpreter = interpreter;
    this.log.info(`Python: ${describeInterpreter(interpreter)}`);

    const probe = await probeVersion(interpreter);
    const check = checkServer(probe);
    const message = problemMessage(check, interpreter, findCheckout());
    if (message !== undefined) {
      this.setState('failed');
      this.log.error(message);
      if (probe.stderr.trim()) {
        this.log.error(probe.stderr.trim().split('\n').slice(-5).join('\n'));
      }
      void this.showProblem(message, interpreter, check.kind !== 'no-python');
      return;
    }
    this.lastProblem = undefined;
    if (check.kind === 'ok') {
      this.log.info(`route-agent ${check.version}`);
    }

    const keys = await this.readKeys();
    this.secretsInUse = [...keys.values()];
    const env = serverEnvironment(process.env, keys, this.settings.stateDir);
    this.log.info(`API keys handed to the server: ${[...keys.keys()].join(', ') || 'none'}`);
    const { command, args } = serverCommand(interpreter);
    const serverOptionsSpec: ServerOptions = {
      command,
      args,
      // No `transport`: stdio all the same, but TransportKind.stdio would append `--stdio`.
      options: { env, cwd: folder?.uri.fsPath },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: 'file' }],
      outputChannel: this.log,
      traceOutputChannel: this.log,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationOptions: this.optionsFor(folder?.uri),
      middleware: {
        workspace: {
          configuration: (params, token, next) => {
            // Our settings are answered from the resolved, trust-filtered view; other sections
            // go through VS Code as usual.
            if (params.items.every((item) => item.section !== SECTION)) {
              return next(params, token);
            }
            return params.items.map((item) =>
              item.section === SECTION ? this.optionsFor(item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined) : null,
            );
          },
        },
      },
    };
    const client = new LanguageClient('routeAgent', 'Route Agent', serverOptionsSpec, clientOptions);
    client.registerFeature(new NotificationProgressFeature(client, this.log));
    client.onDidChangeState((event) => {
      if (this.client !== client) {
        return;
      }
      if (event.newState === State.Running) {
        this.setState('running');
      } else if (event.newState === State.Stopped) {
        this.setState('failed');
      }
    });
    this.client = client;
    this.clientEmitter.fire(client);
    try {
      await client.start();
      await client.setTrace(Trace.fromString(traceLevel(this.log.logLevel)));
      this.setState('running');
    } catch (error) {
      this.setState('failed');
      this.log.error(redact(`The server did not start: ${String(error)}`, this.secretsInUse));
      void vscode.window.showErrorMessage('Route Agent: the server did not start. See the log for details.', 'Show Log').then((pick) => {
        if (pick) {
          this.log.show();
        }
      });
    }
  }

  private async showProblem(message: string, interpreter: Interpreter, offerInstall: boolean): Promise<void> {
    if (this.lastProblem === message) {
      return;
    }
    this.lastProblem = message;
    const actions = offerInstall ? ['Copy Install Command', 'Select Interpreter', 'Show Log'] : ['Select Interpreter', 'Show Log'];
    const pick = await vscode.window.showErrorMessage(message, ...actions);
    if (pick === 'Copy Install Command') {
      await vscode.env.clipboard.writeText(installCommand(interpreter, findCheckout(), message.includes('older')));
    } else if (pick === 'Select Interpreter') {
      await vscode.commands.executeCommand('workbench.action.openSettings', `${SECTION}.python.path`);
    } else if (pick === 'Show Log') {
      this.log.show();
    }
  }

  private async readKeys(): Promise<Map<string, string>> {
    const names = [...KNOWN_PROVIDERS.map((p) => p.envVar), ...this.context.globalState.get<string[]>(CUSTOM_KEY_NAMES, [])];
    const keys = new Map<string, string>();
    for (const name of names) {
      const value = await this.context.secrets.get(secretKey(name));
      if (value) {
        keys.set(name, value);
      }
    }
    return keys;
  }

  /** Tell the server its settings changed; it pulls them with workspace/configuration. */
  async pushConfiguration(): Promise<void> {
    const client = this.client;
    if (client && client.state === State.Running) {
      await client.sendNotification(DidChangeConfigurationNotification.type, { settings: { [SECTION]: this.optionsFor() } });
    }
  }

  private async onLogLevel(level: vscode.LogLevel): Promise<void> {
    const client = this.client;
    if (client && client.state === State.Running) {
      await client.setTrace(Trace.fromString(traceLevel(level)));
    }
    await this.pushConfiguration();
  }

  private async onSettingsChanged(): Promise<void> {
    const next = this.resolve().settings;
    const restart = needsRestart(this.settings, next);
    this.settings = next;
    if (restart) {
      this.log.info('The Python path or state directory changed: restarting the server.');
      await this.restart();
    } else {
      await this.pushConfiguration();
    }
  }

  dispose(): void {
    void this.stopClient();
    for (const d of this.disposables) {
      d.dispose();
    }
  }

  async stop(): Promise<void> {
    await this.stopClient();
    this.setState('stopped');
  }
}

function probeVersion(interpreter: Interpreter): Promise<VersionProbe> {
  return new Promise((resolve) => {
    execFile(
      interpreter.command,
      [...interpreter.args, '-m', 'route_agent', '--version'],
      { timeout: VERSION_TIMEOUT_MS, windowsHide: true, env: { ...process.env, PYTHONUNBUFFERED: '1' } },
      (error, stdout, stderr) => {
        const code = (error as NodeJS.ErrnoException | null)?.code;
        if (error && (code === 'ENOENT' || code === 'EACCES')) {
          resolve({ spawnError: `${code}: ${error.message}`, exitCode: null, stdout: '', stderr: '' });
          return;
        }
        const exitCode = error ? (typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : 1) : 0;
        resolve({ exitCode, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

/** A route-agent checkout among the workspace folders (suggested for `pip install -e`). */
function findCheckout(): string | undefined {
  for (const folder of vscode.workspace.workspaceFolders ?? []) {
    const pyproject = path.join(folder.uri.fsPath, 'pyproject.toml');
    try {
      if (/^name\s*=\s*"route-agent"/m.test(fs.readFileSync(pyproject, 'utf8'))) {
        return folder.uri.fsPath;
      }
    } catch {
      // not a checkout
    }
  }
  return undefined;
}
