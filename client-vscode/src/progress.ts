/**
 * Work-done progress from the server as a notification with Cancel.
 *
 * vscode-languageclient shows server-created progress in the status bar, where a cancellable
 * operation has no Cancel button. A routed run takes minutes and costs money, so its progress
 * belongs in a notification the user can cancel: this replaces the client's
 * `window/workDoneProgress/create` handler, follows the token's `$/progress`, and sends
 * `window/workDoneProgress/cancel` when the user cancels.
 */
import * as vscode from 'vscode';
import {
  ClientCapabilities,
  FeatureState,
  LanguageClient,
  StaticFeature,
  WorkDoneProgress,
  WorkDoneProgressBegin,
  WorkDoneProgressCancelNotification,
  WorkDoneProgressCreateRequest,
  WorkDoneProgressEnd,
  WorkDoneProgressReport,
} from 'vscode-languageclient/node';

type ProgressValue = WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd;

/**
 * Registered after the client's built-in features, so its `initialize` (run at every start and
 * restart) replaces the built-in progress handler.
 */
export class NotificationProgressFeature implements StaticFeature {
  private handler: vscode.Disposable | undefined;

  constructor(
    private readonly client: LanguageClient,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  fillClientCapabilities(capabilities: ClientCapabilities): void {
    capabilities.window = { ...capabilities.window, workDoneProgress: true };
  }

  initialize(): void {
    this.handler?.dispose();
    this.handler = showProgressAsNotifications(this.client, this.log);
  }

  getState(): FeatureState {
    return { kind: 'static' };
  }

  clear(): void {
    this.handler?.dispose();
    this.handler = undefined;
  }
}

export function showProgressAsNotifications(client: LanguageClient, log: vscode.LogOutputChannel): vscode.Disposable {
  return client.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
    void vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'Route Agent', cancellable: true },
      (progress, cancellation) =>
        new Promise<void>((resolve) => {
          let percentage = 0;
          let title = '';
          const finish = () => {
            subscription.dispose();
            cancelListener.dispose();
            resolve();
          };
          const subscription = client.onProgress(WorkDoneProgress.type, token, (value: ProgressValue) => {
            if (value.kind === 'begin') {
              title = value.title;
            }
            if (value.kind === 'end') {
              finish();
              return;
            }
            const increment = value.percentage !== undefined ? Math.max(0, value.percentage - percentage) : undefined;
            if (value.percentage !== undefined) {
              percentage = value.percentage;
            }
            progress.report({ message: [title, value.message].filter((part) => part).join(': '), increment });
          });
          const cancelListener = cancellation.onCancellationRequested(() => {
            log.info(`Cancelling ${title || 'the server task'} (progress ${String(token)})`);
            void client.sendNotification(WorkDoneProgressCancelNotification.type, { token });
            finish();
          });
          // A client stopping mid-run ends the notification too.
          const stopped = client.onDidChangeState(() => {
            if (!client.isRunning()) {
              stopped.dispose();
              finish();
            }
          });
        }),
    );
  });
}
