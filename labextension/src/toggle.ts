/**
 * Auto mode on and off from the UI: the command runs ``%load_ext energykernel`` and
 * ``%energy auto on|off`` as a silent execution (IPython fires no cell hooks for it, so
 * it is not measured, takes no execution count and leaves no output).
 */
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';

export const COMMAND = 'energykernel:toggle-auto';

/** Reads auto mode without importing anything into a kernel that never loaded energykernel. */
const STATE_EXPRESSION =
  "(lambda s: bool(s and s[0].auto))(getattr(get_ipython(), '_energykernel_state', None))";

const known = new Map<string, boolean>(); // kernel id -> auto mode

async function silent(kernel: Kernel.IKernelConnection, code: string): Promise<boolean | null> {
  const future = kernel.requestExecute({
    code, silent: true, store_history: false, allow_stdin: false,
    user_expressions: { auto: STATE_EXPRESSION }
  });
  const reply = (await future.done) as KernelMessage.IExecuteReplyMsg;
  const content = reply.content;
  if (content.status !== 'ok') {
    return null;
  }
  const expr = (content.user_expressions as { [k: string]: any }).auto;
  if (!expr || expr.status !== 'ok') {
    return null;
  }
  const value = String(expr.data?.['text/plain'] ?? '');
  const on = value === 'True';
  known.set(kernel.id, on);
  return on;
}

export function autoMode(panel: NotebookPanel | null): boolean {
  const kernel = panel?.sessionContext.session?.kernel;
  return !!kernel && known.get(kernel.id) === true;
}

/** Ask the current kernel (once per kernel) whether auto mode is on. */
export async function refresh(panel: NotebookPanel | null): Promise<void> {
  const kernel = panel?.sessionContext.session?.kernel;
  if (kernel && !known.has(kernel.id) && panel?.sessionContext.kernelDisplayName) {
    await silent(kernel, '');
  }
}

/** Ask again, after a cell that may have changed auto mode by hand (``%energy auto …``,
 * ``%load_ext``/``%unload_ext energykernel``) ran. */
export async function recheck(panel: NotebookPanel | null): Promise<void> {
  const kernel = panel?.sessionContext.session?.kernel;
  if (kernel) {
    await silent(kernel, '');
  }
}

/** Whether a cell's source may change auto mode. */
export function mayChangeAuto(source: string): boolean {
  return /%energy\b|energykernel/.test(source);
}

export async function toggle(tracker: INotebookTracker): Promise<boolean | null> {
  const panel = tracker.currentWidget;
  const kernel = panel?.sessionContext.session?.kernel;
  if (!panel || !kernel) {
    return null;
  }
  const on = !autoMode(panel);
  return await silent(kernel, `%load_ext energykernel\n%energy auto ${on ? 'on' : 'off'}`);
}
