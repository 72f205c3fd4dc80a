/** Shared by the real-editor tests: processes, code-server with the built .vsix, Chromium. */
import assert from 'node:assert/strict';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Browser, chromium, Page } from 'playwright-core';

export const CLIENT_DIR = path.resolve(__dirname, '../../..');
export const REPO_ROOT = path.resolve(CLIENT_DIR, '..');
const VERSION = JSON.parse(fs.readFileSync(path.join(CLIENT_DIR, 'package.json'), 'utf8')).version as string;
export const VSIX = path.join(CLIENT_DIR, `route-agent-${VERSION}.vsix`);
const CODE_SERVER_DIR = process.env.ROUTE_AGENT_CODE_SERVER_DIR ?? '/opt/route-agent-code-server';
export const CODE_SERVER = path.join(CODE_SERVER_DIR, 'node_modules', '.bin', 'code-server');
export const PYTHON = process.env.ROUTE_AGENT_PYTHON ?? path.join(REPO_ROOT, '.venv', 'bin', 'python');
export const CHROMIUM = process.env.ROUTE_AGENT_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOTS = path.join(REPO_ROOT, 'tests', 'e2e', 'screenshots');
export const FAKE_SERVER = path.join(REPO_ROOT, 'tests', 'fakeserver', 'server.py');

export const STEP_TIMEOUT_MS = 60_000;
export const RUN_TIMEOUT_MS = 120_000;

export interface Started {
  child: ChildProcess;
  output: string[];
}

export function startProcess(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv }): Started {
  // Its own process group, so the whole tree (code-server forks) is stopped by this one id.
  const child = spawn(command, args, { ...options, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const keep = (chunk: Buffer) => {
    output.push(chunk.toString());
    if (output.length > 2000) {
      output.splice(0, output.length - 2000);
    }
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { child, output };
}

export async function stopProcess(started: Started | undefined): Promise<void> {
  const child = started?.child;
  if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    return;
  }
  const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 5000));
  if ((await Promise.race([exited, timeout])) === 'timeout') {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await exited;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address() as net.AddressInfo;
      server.close(() => resolve(address.port));
    });
  });
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) {
        return value;
      }
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export async function firstLine(started: Started, timeoutMs: number): Promise<string> {
  return waitFor('the fake server to print its port', async () => {
    const text = started.output.join('');
    const line = text.split('\n')[0];
    return text.includes('\n') && /^\d+$/.test(line.trim()) ? line.trim() : undefined;
  }, timeoutMs, 100);
}

export function findLogs(root: string | undefined, pattern: RegExp): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(full);
      } else if (entry.name.endsWith('.log') && pattern.test(entry.name)) {
        out.push(full);
      }
    }
  };
  if (root && fs.existsSync(root)) {
    walk(root);
  }
  return out;
}

export function tail(text: string, lines: number): string {
  return text.split('\n').slice(-lines).join('\n');
}

/** Every prerequisite, with what installs it; fails (never skips) when one is missing. */
export function assertPrerequisites(): void {
  for (const [what, where] of [
    ['code-server (run scripts/setup-system.sh)', CODE_SERVER],
    ['Chromium (apt-get install chromium)', CHROMIUM],
    ['the packaged extension (npm run package)', VSIX],
    ['the venv with route-agent (scripts/setup.sh)', PYTHON],
    ['the fake OpenAI-compatible server', FAKE_SERVER],
  ]) {
    assert.ok(fs.existsSync(where), `missing ${what}: ${where}`);
  }
}

export interface Editor {
  page: Page;
  browser: Browser;
  codeServer: Started;
  userData: string;
  stop(): Promise<void>;
}

/**
 * code-server with the .vsix installed into fresh user data under `scratch`, `userSettings` as the
 * user's settings.json, opened on `workspace` in Chromium. `trust: false` keeps VS Code's workspace
 * trust on, so a new folder opens in restricted mode.
 */
export async function launchEditor(
  scratch: string,
  workspace: string,
  userSettings: Record<string, unknown>,
  trust: boolean,
  logLevel?: 'trace' | 'debug',
): Promise<Editor> {
  const userData = path.join(scratch, 'user-data');
  const extensions = path.join(scratch, 'extensions');
  fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
  const quiet = {
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'workbench.enableExperiments': false,
    'telemetry.telemetryLevel': 'off',
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
    'extensions.ignoreRecommendations': true,
    'update.mode': 'none',
    'files.autoSave': 'off',
    'git.enabled': false,
    'window.commandCenter': false,
    'chat.commandCenter.enabled': false,
    'security.workspace.trust.enabled': !trust,
    'security.workspace.trust.startupPrompt': 'never',
    'security.workspace.trust.banner': 'always',
  };
  fs.writeFileSync(path.join(userData, 'User', 'settings.json'), JSON.stringify({ ...quiet, ...userSettings }, null, 2));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    XDG_CONFIG_HOME: path.join(scratch, 'xdg-config'),
    XDG_DATA_HOME: path.join(scratch, 'xdg-data'),
    // The policy's checks run `python -m pytest`: the venv's python comes first.
    PATH: `${path.dirname(PYTHON)}:${process.env.PATH ?? ''}`,
  };
  const install = execFileSync(CODE_SERVER, ['--user-data-dir', userData, '--extensions-dir', extensions, '--install-extension', VSIX], {
    env,
    timeout: 120_000,
  }).toString();
  assert.match(install, /successfully installed/i, install);
  const port = await freePort();
  const args = ['--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--disable-telemetry', '--disable-update-check'];
  if (trust) {
    args.push('--disable-workspace-trust');
  }
  if (logLevel) {
    // Also the extension's log channel level, and so its LSP trace.
    args.push('--log', logLevel);
  }
  const codeServer = startProcess(CODE_SERVER, [...args, '--user-data-dir', userData, '--extensions-dir', extensions, workspace], { env, cwd: scratch });
  const base = `http://127.0.0.1:${port}`;
  await waitFor('code-server /healthz', async () => ((await fetch(`${base}/healthz`)).ok ? true : undefined), 90_000, 500);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(`${base}/?folder=${encodeURIComponent(workspace)}`);
  await page.locator('.monaco-workbench').waitFor({ timeout: 90_000 });
  return {
    page,
    browser,
    codeServer,
    userData,
    async stop() {
      await browser.close().catch(() => undefined);
      await stopProcess(codeServer);
    },
  };
}

/** Screenshots numbered in order, with a prefix per test file. */
export class Screenshots {
  private count = 0;
  readonly taken: string[] = [];

  constructor(private readonly prefix: string) {
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    for (const old of fs.readdirSync(SCREENSHOTS)) {
      if (old.startsWith(`${prefix}-`) && old.endsWith('.png')) {
        fs.rmSync(path.join(SCREENSHOTS, old));
      }
    }
  }

  async take(page: Page, name: string): Promise<void> {
    await settled(page);
    this.count++;
    const file = path.join(SCREENSHOTS, `${this.prefix}-${String(this.count).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file });
    this.taken.push(path.relative(REPO_ROOT, file));
  }
}

/**
 * Resolves once every finite animation and transition on the page has finished (notifications and
 * hovers slide and fade in), so a screenshot shows what the user sees. Endless ones (the progress
 * bar's) never finish and are left out.
 */
export async function settled(page: Page): Promise<void> {
  // A string: this runs in the page, and the test's TypeScript has no DOM types.
  await page.evaluate(`(async () => {
    for (let round = 0; round < 10; round++) {
      const running = document.getAnimations().filter((a) => a.playState === 'running' && a.effect?.getComputedTiming().endTime !== Infinity);
      if (running.length === 0) {
        return;
      }
      await Promise.all(running.map((a) => a.finished.catch(() => undefined)));
    }
  })()`);
}

/**
 * Waits until the quick input's focused row (the one Enter picks) shows `text`: typing filters the
 * list asynchronously, and until it has, Enter would pick an older row.
 */
export async function quickInputFocused(page: Page, text: string): Promise<void> {
  await page.locator('.quick-input-list .monaco-list-row.focused', { hasText: text }).first().waitFor({ state: 'visible' });
}
