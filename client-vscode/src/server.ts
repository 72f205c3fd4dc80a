/**
 * Starting, restarting and stopping the language server (`<python> -m route_agent serve`).
 *
 * Before each start the chosen interpreter is asked `-m route_agent --version`. When route-agent is
 * missing or too old there, the server shipped inside the .vsix is installed into the extension's own
 * environment (made from that interpreter) with a progress notification, and runs from there; a
 * `routeAgent.python.path` that already has route-agent wins. When nothing can run, the user gets
 * one message saying why (again on every Restart Server they ask for) instead of a crash loop.
 * Restarts go through a queue, so a burst of requests restarts once more, not once each. A server
 * that crashes is restarted up to four times in three minutes; at the fifth crash the message says
 * so and offers Restart Server.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  RevealOutputChannelOn,
  ServerOptions,
  State,
  Trace,
} from 'vscode-languageclient/node';

import { findBundle, ensureBundledServer } from './install';
import { chooseServer } from './logic/bundle';
import { CrashWindow, MAX_CRASHES } from './logic/crashes';
import {
  checkServer,
  chooseInterpreter,
  describeInterpreter,
  installCommand,
  Interpreter,
  interpreterCandidates,
  problemMessage,
  serverCommand,
  spawnProblem,
  VersionProbe,
} from './logic/interpreter';
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
  private readonly crashes = new CrashWindow();

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

  /**
   * `byUser`: the user asked (Restart Server, a notification's button): a problem that still stands
   * is said again, and the crash count starts afresh.
   */
  restart(byUser = false): Promise<void> {
    if (byUser) {
      this.lastProblem = undefined;
      this.crashes.reset();
    }
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
    const bundle = findBundle(this.context);
    const choice = chooseServer(check, interpreter, bundle?.manifest);
    if (choice.kind === 'problem') {
      const message = problemMessage(check, interpreter, findCheckout()) ?? `Route Agent: cannot start the server with ${describeInterpreter(interpreter)}.`;
      this.setState('failed');
      this.log.error(message);
      if (probe.stderr.trim()) {
        this.log.error(probe.stderr.trim().split('\n').slice(-5).join('\n'));
      }
      void this.showProblem(message, interpreter, check.kind !== 'no-python');
      return;
    }
    if (choice.kind === 'install' && bundle !== undefined) {
      this.log.info(check.kind === 'too-old'
        ? `route-agent ${check.version} in ${describeInterpreter(interpreter)} is too old: using the bundled server`
        : `route-agent is not installed in ${describeInterpreter(interpreter)}: using the bundled server`);
      try {
        this.interpreter = await ensureBundledServer(bundle, interpreter, this.log);
      } catch (error) {
        const message = `Route Agent: could not install the bundled language server with ${describeInterpreter(interpreter)}: ${
          error instanceof Error ? error.message : String(error)}. Set routeAgent.python.path to a Python 3.11+ interpreter.`;
        this.setState('failed');
        this.log.error(message);
        void this.showProblem(message, interpreter, false);
        return;
      }
      this.log.info(`Python: ${describeInterpreter(this.interpreter)}`);
      this.log.info(`route-agent ${bundle.manifest.version}`);
    } else {
      this.lastProblem = undefined;
      if (check.kind === 'ok') {
        this.log.info(`route-agent ${check.version}`);
      }
    }
    const running = this.interpreter ?? interpreter;

    const keys = await this.readKeys();
    this.secretsInUse = [...keys.values()];
    const env = serverEnvironment(process.env, keys, this.settings.stateDir);
    this.log.info(`API keys handed to the server: ${[...keys.keys()].join(', ') || 'none'}`);
    const { command, args } = serverCommand(running);
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
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue, handled: true }),
        closed: () => {
          if (this.crashes.record(Date.now()) === 'restart') {
            this.log.warn(`The server stopped unexpectedly (${this.crashes.recent} time(s) in three minutes): restarting it.`);
            return { action: CloseAction.Restart, handled: true };
          }
          const message = `Route Agent: the server crashed ${MAX_CRASHES} times in three minutes and was not restarted again.`;
          this.log.error(`${message} The log above shows why.`);
          void this.offerRestart(message);
          return { action: CloseAction.DoNotRestart, handled: true };
        },
      },
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
    const actions = offerInstall ? ['Select Interpreter', 'Copy Install Command', 'Show Log'] : ['Select Interpreter', 'Show Log'];
    const pick = await vscode.window.showErrorMessage(message, ...actions);
    if (pick === 'Copy Install Command') {
      await vscode.env.clipboard.writeText(installCommand(interpreter, findCheckout(), message.includes('older')));
    } else if (pick === 'Select Interpreter') {
      await this.selectInterpreter();
    } else if (pick === 'Show Log') {
      this.log.show();
    }
  }

  private async offerRestart(message: string): Promise<void> {
    const pick = await vscode.window.showErrorMessage(message, 'Restart Server', 'Show Log');
    if (pick === 'Restart Server') {
      await this.restart(true);
    } else if (pick === 'Show Log') {
      this.log.show();
    }
  }

  /**
   * A real picker (the settings page hides a machine-overridable setting in a remote window): the
   * workspace's environments and the Pythons on PATH, the Python extension's own picker when it is
   * installed, or a file. The choice goes to the user's `routeAgent.python.path`; the server
   * restarts with it.
   */
  async selectInterpreter(): Promise<void> {
    type Item = vscode.QuickPickItem & { value?: string; action?: 'python-extension' | 'browse' | 'clear' };
    const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
    const found = interpreterCandidates(process.env.PATH, folders, (file) => {
      try {
        return fs.statSync(file).isFile();
      } catch {
        return false;
      }
    }, (dir) => fs.readdirSync(dir));
    const current = this.settings.pythonPath;
    const items: Item[] = found.map((file) => ({ label: file, description: file === current ? 'current setting' : undefined, value: file }));
    if (vscode.extensions.getExtension('ms-python.python')) {
      items.push({ label: "$(python) Use the Python extension's interpreter…", action: 'python-extension' });
    }
    items.push({ label: '$(folder-opened) Browse…', action: 'browse' });
    if (current) {
      items.push({ label: '$(discard) Clear routeAgent.python.path', description: 'the Python extension, else python3, else the bundled server', action: 'clear' });
    }
    const pick = await vscode.window.showQuickPick(items, { title: 'Route Agent: Python interpreter for the language server', placeHolder: 'Python 3.11+' });
    if (!pick) {
      return;
    }
    let value = pick.value;
    if (pick.action === 'python-extension') {
      await vscode.commands.executeCommand('python.setInterpreter');
      value = '';
    } else if (pick.action === 'browse') {
      const chosen = await vscode.window.showOpenDialog({ canSelectMany: false, openLabel: 'Use this Python', title: 'Python interpreter' });
      if (!chosen?.[0]) {
        return;
      }
      value = chosen[0].fsPath;
    } else if (pick.action === 'clear') {
      value = '';
    }
    this.lastProblem = undefined;
    await vscode.workspace.getConfiguration(SECTION).update('python.path', value, vscode.ConfigurationTarget.Global);
    this.log.info(`routeAgent.python.path set to ${value || '(empty)'} in the user settings`);
    if (value === current) {
      await this.restart(true);
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
        if (error && (code === 'ENOENT' || code === 'EACCES' || code === 'ENOTDIR')) {
          resolve({ spawnError: spawnProblem(code), exitCode: null, stdout: '', stderr: '' });
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
