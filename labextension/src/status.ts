/**
 * The status-bar item: live power of the server's machine (from energykernel's server
 * extension, at most one request a second, none while the page is hidden) and the
 * energy of the current notebook's measured cells (summed from their metadata).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { si } from './format';
import { asRun, METADATA_KEY } from './run';

/** Milliseconds between two polls of the power endpoint (never less). */
export const POLL_MS = 1000;

interface IPower {
  power_w: number | null;
  components_w: { [component: string]: number };
  method: { [component: string]: string };
  label: string;
  interval_s: number;
  reason?: string;
}

export class PowerStatus extends Widget {
  private timer: number | null = null;
  private inFlight = false;
  private polls = 0;
  private readonly settings = ServerConnection.makeSettings();

  constructor(private readonly tracker: INotebookTracker) {
    super();
    this.addClass('ek-status');
    this.node.textContent = '⚡ …';
    this.node.title = 'energykernel: power of this machine and energy of this notebook';
    document.addEventListener('visibilitychange', this.onVisibility);
    tracker.currentChanged.connect(this.showTotal, this);
    this.schedule(0);
  }

  dispose(): void {
    document.removeEventListener('visibilitychange', this.onVisibility);
    if (this.timer !== null) {
      window.clearTimeout(this.timer);
    }
    super.dispose();
  }

  private onVisibility = () => {
    if (document.hidden) {
      if (this.timer !== null) {
        window.clearTimeout(this.timer);
        this.timer = null;
      }
    } else {
      this.schedule(0);
    }
  };

  private schedule(ms: number): void {
    if (this.timer !== null || document.hidden || this.isDisposed) {
      return;
    }
    this.timer = window.setTimeout(() => {
      this.timer = null;
      void this.poll();
    }, ms);
  }

  private async poll(): Promise<void> {
    if (this.inFlight) {
      return;
    }
    this.inFlight = true;
    const started = Date.now();
    try {
      const url = URLExt.join(this.settings.baseUrl, 'energykernel', 'power');
      const reply = await ServerConnection.makeRequest(url, {}, this.settings);
      if (reply.ok) {
        this.showPower((await reply.json()) as IPower);
      } else {
        this.showPower(null, `the server answered ${reply.status}`);
      }
    } catch (err) {
      this.showPower(null, String(err));
    } finally {
      this.inFlight = false;
      this.polls += 1;
      this.node.dataset.polls = String(this.polls);
      this.schedule(Math.max(POLL_MS - (Date.now() - started), POLL_MS / 2));
    }
  }

  /** Energy of the measured cells of the current notebook, in J (null: no notebook). */
  private notebookTotalJ(): number | null {
    const model = this.tracker.currentWidget?.content.model;
    if (!model) {
      return null;
    }
    let total = 0;
    for (let i = 0; i < model.cells.length; i++) {
      const run = asRun(model.cells.get(i).getMetadata(METADATA_KEY));
      if (run) {
        total += run.total_j;
      }
    }
    return total;
  }

  private power: string = '⚡ …';
  private powerTitle: string = '';

  private showPower(power: IPower | null, why?: string): void {
    if (power && typeof power.power_w === 'number') {
      this.power = `⚡ ${si(power.power_w, 'W')}${power.label === 'estimate' ? ' (estimate)' : ''}`;
      this.node.dataset.powerW = String(power.power_w);
      this.node.dataset.method = power.label;
      const parts = Object.entries(power.components_w).map(
        ([c, w]) => `${c} ${si(w, 'W')} (${power.method[c]})`);
      this.powerTitle = `power of this machine: ${parts.join(', ')}`;
    } else {
      this.power = '⚡ — W';
      this.powerTitle = `no power reading: ${why ?? power?.reason ?? 'unknown'}`;
      delete this.node.dataset.powerW;
    }
    this.showTotal();
  }

  private showTotal(): void {
    const total = this.notebookTotalJ();
    let text = this.power;
    if (total !== null) {
      this.node.dataset.totalJ = String(total);
      text += ` · notebook ${si(total, 'J')}`;
    } else {
      delete this.node.dataset.totalJ;
    }
    this.node.textContent = text;
    this.node.title = `${this.powerTitle}\nenergy of this notebook's measured cells (from their metadata)`;
  }
}
