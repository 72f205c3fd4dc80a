/**
 * The extension in real VS Code: code-server 4.100.3 in Debian's Chromium, driven by playwright-core.
 *
 * Installs the built .vsix, opens the example repository with its pending auth change, and goes
 * through what a user does: the risk in the status bar (strong lane), `Risk score` in a hover, the
 * breakdown behind the status bar; then, after committing that change and typing a small edit, a
 * routed fix on the fast lane against the test's OpenAI-compatible server on 127.0.0.1, its
 * progress, the `route-agent/verify` diagnostic, the escalation prompt, the strong lane's verified
 * patch applied, and the file's new content on disk. A screenshot is saved at each step into
 * tests/e2e/screenshots/.
 *
 * Needs: code-server installed by scripts/setup-system.sh, /usr/bin/chromium, the repository's
 * .venv with route-agent, and `npm run package` run first.
 */
import assert from 'node:assert/strict';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Browser, chromium, Locator, Page } from 'playwright-core';

import { commandsHash } from '../../src/logic/approval';
import * as fixture from './fixture';

const CLIENT_DIR = path.resolve(__dirname, '../../..');
const REPO_ROOT = path.resolve(CLIENT_DIR, '..');
const VERSION = JSON.parse(fs.readFileSync(path.join(CLIENT_DIR, 'package.json'), 'utf8')).version as string;
const VSIX = path.join(CLIENT_DIR, `route-agent-${VERSION}.vsix`);
const CODE_SERVER_DIR = process.env.ROUTE_AGENT_CODE_SERVER_DIR ?? '/opt/route-agent-code-server';
const CODE_SERVER = path.join(CODE_SERVER_DIR, 'node_modules', '.bin', 'code-server');
const PYTHON = process.env.ROUTE_AGENT_PYTHON ?? path.join(REPO_ROOT, '.venv', 'bin', 'python');
const CHROMIUM = process.env.ROUTE_AGENT_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOTS = path.join(REPO_ROOT, 'tests', 'e2e', 'screenshots');
const FAKE_SERVER = path.join(REPO_ROOT, 'tests', 'fakeserver', 'server.py');

const STEP_TIMEOUT_MS = 60_000;
const RUN_TIMEOUT_MS = 120_000;

interface Started {
  child: ChildProcess;
  output: string[];
}

function startProcess(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv }): Started {
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

async function stopProcess(started: Started | undefined): Promise<void> {
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

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address() as net.AddressInfo;
      server.close(() => resolve(address.port));
    });
  });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 250): Promise<T> {
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

async function firstLine(started: Started, timeoutMs: number): Promise<string> {
  return waitFor('the fake server to print its port', async () => {
    const text = started.output.join('');
    const line = text.split('\n')[0];
    return text.includes('\n') && /^\d+$/.test(line.trim()) ? line.trim() : undefined;
  }, timeoutMs, 100);
}

describe('Route Agent in code-server', { timeout: 15 * 60_000 }, () => {
  let scratch: string;
  let workspace: string;
  let fake: Started | undefined;
  let codeServer: Started | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let fakeUrl: string;
  let userData: string;
  let shot = 0;
  let failedStep: string | undefined;
  const screenshots: string[] = [];

  async function screenshot(name: string): Promise<void> {
    // Let notification and hover animations settle so the picture shows what the user sees.
    await page.waitForTimeout(400);
    shot++;
    const file = path.join(SCREENSHOTS, `${String(shot).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file });
    screenshots.push(path.relative(REPO_ROOT, file));
  }

  /** One user-visible step: later steps are reported as not reached (failed), never skipped. */
  function step(name: string, body: () => Promise<void>, timeoutMs = STEP_TIMEOUT_MS): void {
    test(name, { timeout: timeoutMs + 10_000 }, async () => {
      if (failedStep !== undefined) {
        throw new Error(`not reached: the step "${failedStep}" failed`);
      }
      try {
        await body();
      } catch (error) {
        failedStep = name;
        if (page) {
          await screenshot(`FAILED-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`).catch(() => undefined);
        }
        throw error;
      }
    });
  }

  async function script(models: Record<string, Record<string, unknown>>): Promise<void> {
    const response = await fetch(`${fakeUrl}/_script`, { method: 'POST', body: JSON.stringify(models) });
    assert.equal(response.status, 200);
  }

  async function requests(): Promise<{ model: string }[]> {
    return (await (await fetch(`${fakeUrl}/_requests`)).json()) as { model: string }[];
  }

  before(async () => {
    for (const [what, where] of [
      ['code-server (run scripts/setup-system.sh)', CODE_SERVER],
      ['Chromium (apt-get install chromium)', CHROMIUM],
      ['the packaged extension (npm run package)', VSIX],
      ['the venv with route-agent (scripts/setup.sh)', PYTHON],
      ['the fake OpenAI-compatible server', FAKE_SERVER],
    ]) {
      assert.ok(fs.existsSync(where), `missing ${what}: ${where}`);
    }
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    for (const old of fs.readdirSync(SCREENSHOTS)) {
      if (old.endsWith('.png')) {
        fs.rmSync(path.join(SCREENSHOTS, old));
      }
    }
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'route-agent-e2e-'));
    workspace = path.join(scratch, 'identity-service');
    userData = path.join(scratch, 'user-data');
    const extensions = path.join(scratch, 'extensions');
    const stateDir = path.join(scratch, 'state');

    fake = startProcess(PYTHON, [FAKE_SERVER, '--port', '0'], {});
    fakeUrl = `http://127.0.0.1:${await firstLine(fake, 20_000)}`;
    fixture.makeRepository(workspace, `${fakeUrl}/v1`);

    fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
    fs.writeFileSync(
      path.join(userData, 'User', 'settings.json'),
      JSON.stringify(
        {
          'routeAgent.python.path': PYTHON,
          'routeAgent.stateDir': stateDir,
          'security.workspace.trust.enabled': false,
          'workbench.startupEditor': 'none',
          'workbench.tips.enabled': false,
          'workbench.enableExperiments': false,
          'telemetry.telemetryLevel': 'off',
          'extensions.autoCheckUpdates': false,
          'extensions.autoUpdate': false,
          'extensions.ignoreRecommendations': true,
          'update.mode': 'none',
          'editor.hover.delay': 100,
          'files.autoSave': 'off',
          'git.enabled': false,
          'window.commandCenter': false,
          'chat.commandCenter.enabled': false,
        },
        null,
        2,
      ),
    );
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
    codeServer = startProcess(
      CODE_SERVER,
      ['--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust',
        '--user-data-dir', userData, '--extensions-dir', extensions, workspace],
      { env, cwd: scratch },
    );
    const base = `http://127.0.0.1:${port}`;
    await waitFor('code-server /healthz', async () => ((await fetch(`${base}/healthz`)).ok ? true : undefined), 90_000, 500);

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`${base}/?folder=${encodeURIComponent(workspace)}`);
    await page.locator('.monaco-workbench').waitFor({ timeout: 90_000 });
  });

  after(async () => {
    if (screenshots.length > 0) {
      console.log(`screenshots:\n  ${screenshots.join('\n  ')}`);
    }
    if (failedStep !== undefined) {
      for (const log of findLogs(userData, /Route Agent|routeAgent|route-agent/i)) {
        console.log(`--- ${log} (tail)\n${tail(fs.readFileSync(log, 'utf8'), 60)}`);
      }
      if (codeServer) {
        console.log(`--- code-server output (tail)\n${tail(codeServer.output.join(''), 40)}`);
      }
    }
    await browser?.close().catch(() => undefined);
    await stopProcess(codeServer);
    await stopProcess(fake);
    if (scratch && failedStep === undefined) {
      fs.rmSync(scratch, { recursive: true, force: true });
    } else if (scratch) {
      console.log(`kept for inspection: ${scratch}`);
    }
  });

  // --- helpers that act as the user ---------------------------------------------------------

  async function quickOpen(rel: string): Promise<void> {
    await page.locator('.monaco-workbench').click({ position: { x: 700, y: 400 } }).catch(() => undefined);
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill(rel);
    await page.locator('.quick-input-list .monaco-list-row').first().waitFor();
    await page.waitForTimeout(300);
    await page.keyboard.press('Enter');
    await page.locator('.tabs-container .tab.active', { hasText: path.basename(rel) }).waitFor();
    await page.locator('.monaco-editor .view-lines').first().waitFor();
  }

  async function runCommand(title: string): Promise<void> {
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill(`>${title}`);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor();
    await page.waitForTimeout(200);
    await page.keyboard.press('Enter');
  }

  function editorLine(text: string): Locator {
    return page.locator('.editor-instance .monaco-editor .view-line', { hasText: text }).first();
  }

  function riskItem(): Locator {
    return page.locator('.statusbar-item', { hasText: /Risk/ }).first();
  }

  async function riskText(pattern: RegExp, timeoutMs = STEP_TIMEOUT_MS): Promise<string> {
    return waitFor(`the status bar to show ${pattern}`, async () => {
      const text = (await riskItem().textContent({ timeout: 1000 }))?.replace(/\s+/g, ' ').trim();
      return text && pattern.test(text) ? text : undefined;
    }, timeoutMs);
  }

  /** The rows of the open code action menu (Ctrl+.), in order, headers excluded. */
  async function actionRows(): Promise<string[]> {
    const menu = page.locator('.action-widget');
    await menu.waitFor({ state: 'visible' });
    const rows = menu.locator('.monaco-list-row.action');
    await rows.first().waitFor();
    return (await rows.allTextContents()).map((t) => t.replace(/\s+/g, ' ').trim());
  }

  async function openQuickFix(): Promise<string[]> {
    return waitFor('code actions from the server', async () => {
      await page.keyboard.press('Control+.');
      const rows = await actionRows().catch(() => []);
      if (rows.some((r) => r.startsWith('Route fix') || r.startsWith('Apply verified patch'))) {
        return rows;
      }
      await page.keyboard.press('Escape');
      return undefined;
    }, STEP_TIMEOUT_MS, 1000);
  }

  function toast(text: string | RegExp): Locator {
    return page.locator('.notification-toast', { hasText: text }).first();
  }

  // --- the steps ------------------------------------------------------------------------------

  step('the workbench opens the example repository with the extension', async () => {
    await page.locator('.statusbar').waitFor();
    await screenshot('workbench-opened');
  });

  step('the status bar shows the risk of the pending auth change and the strong lane', async () => {
    await quickOpen(fixture.TOKENS_PATH);
    const text = await riskText(/Risk \d+ · strong/);
    const score = Number(/Risk (\d+)/.exec(text)?.[1]);
    assert.ok(score >= 5, `risk ${score} should include the 5 points of auth code`);
    await screenshot('status-bar-strong-lane');
  });

  step('a hover in the changed file shows Risk score and its breakdown', async () => {
    await editorLine('def verify_token').click();
    await page.keyboard.press('End');
    await page.keyboard.press('Home');
    await page.keyboard.press('Control+K');
    await page.keyboard.press('Control+I');
    const hover = page.locator('.monaco-hover', { hasText: 'Risk score' }).first();
    await hover.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
    const text = (await hover.textContent()) ?? '';
    assert.match(text, /Risk score:?\s*\d+/);
    assert.match(text, /strong/i);
    assert.match(text, /auth/i);
    await screenshot('hover-risk-score');
    await page.keyboard.press('Escape');
  });

  step('clicking the status bar item shows the breakdown and the actions', async () => {
    await riskItem().click();
    const list = page.locator('.quick-input-widget');
    await list.locator('.monaco-list-row', { hasText: /Risk score: \d+/ }).first().waitFor();
    const rows = (await list.locator('.monaco-list-row').allTextContents()).join('\n');
    assert.match(rows, /Route Task/);
    assert.match(rows, /Escalate to Strong Lane/);
    await screenshot('risk-breakdown-quick-pick');
    await page.keyboard.press('Escape');
  });

  step('after the auth change is committed, an edit moves the status bar to the fast lane', async () => {
    fixture.commitPending(workspace);
    await quickOpen(fixture.NAMES_PATH);
    await editorLine('How people').click();
    await page.keyboard.press('End');
    await page.keyboard.press('Enter');
    await page.keyboard.type(fixture.NAMES_USER_EDIT_LINE);
    await page.keyboard.press('Control+S');
    await waitFor('names.py saved', async () => (fs.readFileSync(path.join(workspace, fixture.NAMES_PATH), 'utf8') === fixture.NAMES_EDITED ? true : undefined), 15_000);
    await riskText(/Risk \d+ · fast/);
    await screenshot('status-bar-fast-lane-after-edit');
  });

  step('Approve Policy Commands shows the commands and their SHA-256, and approves them', async () => {
    await runCommand('Route Agent: Approve Policy Commands');
    const dialog = page.locator('.monaco-dialog-box');
    await dialog.waitFor({ state: 'visible' });
    const text = (await dialog.textContent()) ?? '';
    assert.match(text, /allow these 2 verification command\(s\)/);
    assert.ok(text.includes(`SHA-256: ${commandsHash(fixture.POLICY_COMMANDS)}`), `dialog: ${text}`);
    assert.ok(text.includes('[fast] tests: python -m pytest -q -p no:cacheprovider --junitxml=.e2e-report.xml tests'), `dialog: ${text}`);
    await screenshot('approve-policy-commands');
    await dialog.locator('.monaco-button', { hasText: /^Approve$/ }).click();
    await toast(/policy command\(s\) approved/).waitFor({ state: 'visible' });
  });

  step('Route fix via the fast lane (Ctrl+. then Enter) shows progress', async () => {
    const fast = fixture.patchReply(fixture.unifiedDiff(fixture.NAMES_PATH, fixture.NAMES_EDITED, fixture.NAMES_FAST, scratch));
    const strong = fixture.patchReply(fixture.unifiedDiff(fixture.NAMES_PATH, fixture.NAMES_EDITED, fixture.NAMES_STRONG, scratch));
    await script({
      [fixture.MODELS.fast]: { reply: fast, delay: 4 },
      [fixture.MODELS.strong]: { reply: strong, delay: 4 },
      [fixture.MODELS.verifier]: { reply: fixture.VERIFIER_PASS },
    });
    await editorLine('return f"{first} {last}"').click();
    const rows = await openQuickFix();
    assert.match(rows[0], /^Route fix via fast lane \(risk \d+\)/, `first action: ${rows.join(' | ')}`);
    await screenshot('quick-fix-menu');
    await page.keyboard.press('Enter');
    // A notification (not only the status bar) with the run's phase and a Cancel button.
    const progress = toast(/routed fix/);
    await progress.waitFor({ state: 'visible', timeout: 30_000 });
    await progress.locator('.monaco-button', { hasText: 'Cancel' }).waitFor({ state: 'visible' });
    await screenshot('routed-run-progress');
  }, RUN_TIMEOUT_MS);

  step('the failed fast attempt shows a route-agent/verify diagnostic', async () => {
    await waitFor('the fast model to be called', async () => ((await requests()).some((r) => r.model === fixture.MODELS.fast) ? true : undefined), RUN_TIMEOUT_MS, 500);
    await page.keyboard.press('Control+Shift+M');
    const marker = page.locator('.markers-panel .monaco-list-row', { hasText: 'route-agent/verify' }).first();
    await marker.waitFor({ state: 'visible', timeout: RUN_TIMEOUT_MS });
    const problems = (await page.locator('.markers-panel').textContent()) ?? '';
    assert.match(problems, /route-agent\/verify/);
    await screenshot('verify-diagnostic');
  }, RUN_TIMEOUT_MS);

  step('the escalation prompt sends the task to the strong lane', async () => {
    const prompt = toast(/strong lane|[Ee]scalat/);
    await prompt.waitFor({ state: 'visible', timeout: RUN_TIMEOUT_MS });
    await screenshot('escalation-prompt');
    await prompt.locator('.monaco-button', { hasText: /^Escalate$/ }).click();
    await waitFor('the strong model to be called', async () => ((await requests()).some((r) => r.model === fixture.MODELS.strong) ? true : undefined), RUN_TIMEOUT_MS, 500);
    const passed = toast(/passed verification/);
    await passed.waitFor({ state: 'visible', timeout: RUN_TIMEOUT_MS });
    await screenshot('strong-lane-passed');
  }, RUN_TIMEOUT_MS * 2);

  step('Apply verified patch changes the file to the strong lane\'s version', async () => {
    await page.keyboard.press('Control+Shift+M');
    await quickOpen(fixture.NAMES_PATH);
    await editorLine('return f"{first} {last}"').click();
    const rows = await waitFor('the Apply verified patch action', async () => {
      const found = await openQuickFix();
      if (found.some((r) => r.startsWith('Apply verified patch'))) {
        return found;
      }
      await page.keyboard.press('Escape');
      return undefined;
    }, STEP_TIMEOUT_MS, 1000);
    const index = rows.findIndex((r) => r.startsWith('Apply verified patch'));
    for (let i = 0; i < index; i++) {
      await page.keyboard.press('ArrowDown');
    }
    await screenshot('apply-verified-patch-menu');
    await page.keyboard.press('Enter');
    await editorLine('last.strip()').waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
    await page.keyboard.press('Control+S');
    const onDisk = await waitFor('the patched file on disk', async () => {
      const text = fs.readFileSync(path.join(workspace, fixture.NAMES_PATH), 'utf8');
      return text === fixture.NAMES_STRONG ? text : undefined;
    }, 15_000).catch(() => fs.readFileSync(path.join(workspace, fixture.NAMES_PATH), 'utf8'));
    await screenshot('patch-applied');
    assert.equal(onDisk, fixture.NAMES_STRONG);
  });

  step('Show Ledger Report opens the per-lane table and charts with both attempts', async () => {
    await runCommand('Route Agent: Show Ledger Report');
    const tab = page.locator('.tabs-container .tab', { hasText: 'Route Agent: Ledger' });
    await tab.waitFor({ state: 'visible' });
    const frame = page.frameLocator('iframe.webview.ready').first().frameLocator('iframe#active-frame');
    const table = frame.locator('table');
    await table.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
    const text = (await table.textContent()) ?? '';
    assert.match(text, /fast/);
    assert.match(text, /strong/);
    await frame.locator('svg[aria-label="Pass rate by lane"]').waitFor();
    await frame.locator('svg[aria-label="Cost by lane (USD)"]').waitFor();
    await screenshot('ledger-report');
  });

  step('Restart Server twice in a row: the restarts run one after the other and the risk comes back', async () => {
    await quickOpen(fixture.NAMES_PATH);
    await runCommand('Route Agent: Restart Server');
    await runCommand('Route Agent: Restart Server');
    await riskText(/Risk \d+ · fast/);
    const logs = findLogs(userData, /Route Agent/);
    assert.ok(logs.length > 0, 'the Route Agent log channel has a file');
    // The first start and one per request: the second request waits for the first restart.
    await waitFor('three server starts in the log', async () => {
      const starts = fs.readFileSync(logs[0], 'utf8').split('\n').filter((l) => /\[info\] route-agent \d+\.\d+/.test(l)).length;
      return starts === 3 ? starts : undefined;
    }, STEP_TIMEOUT_MS);
    await screenshot('after-restart');
  });
});

function findLogs(root: string | undefined, pattern: RegExp): string[] {
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

function tail(text: string, lines: number): string {
  return text.split('\n').slice(-lines).join('\n');
}
