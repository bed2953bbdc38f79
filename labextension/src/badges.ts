/**
 * The badge of a measured cell, drawn from the cell's metadata["energykernel"] (so a
 * saved notebook shows its badges with no kernel), and the harvest that writes that
 * metadata from the run the kernel sends with its ⚡ line (mime type MIME).
 */
import { Cell, CodeCell, ICellModel, ICodeCellModel } from '@jupyterlab/cells';
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { IOutputAreaModel } from '@jupyterlab/outputarea';
import { PanelLayout, Widget } from '@lumino/widgets';

import { duration, si } from './format';
import { asRun, IRun, isEstimate, METADATA_KEY, MIME } from './run';

const COMPONENTS = ['cpu', 'gpu', 'ram', 'storage'];

/** A cell still measured after this long shows "measuring…" (short cells never do). */
const MEASURING_AFTER_MS = 300;

/** The run shown by a cell's outputs: the last finished one, 'running', or null. */
function outputRun(model: ICodeCellModel): IRun | 'running' | null {
  let found: IRun | 'running' | null = null;
  const outputs = model.outputs;
  for (let i = 0; i < outputs.length; i++) {
    const data = outputs.get(i).data[MIME];
    if (data === undefined) {
      continue;
    }
    const run = asRun(data);
    if (run) {
      found = run;
    } else if ((data as { status?: string }).status === 'running') {
      found = found ?? 'running';
    }
  }
  return found;
}

/** Whether an outputs change may concern a run (an output with MIME added or set). */
function concernsRun(change: IOutputAreaModel.ChangedArgs): boolean {
  if (change.type === 'remove') {
    return false;
  }
  return change.newValues.some(o => o.data[MIME] !== undefined);
}

/** Keep the cell's metadata in step with the run its outputs show. */
function harvest(model: ICodeCellModel): void {
  const run = outputRun(model);
  if (run === null || run === 'running') {
    return;
  }
  const kept = model.getMetadata(METADATA_KEY) as IRun | undefined;
  if (kept && kept.run_id === run.run_id && kept.status === run.status) {
    return;
  }
  model.setMetadata(METADATA_KEY, { ...run });
}

/** A compact badge: energy (estimate marked), duration, carbon; split in the tooltip. */
export class Badge extends Widget {
  private shown = ''; // what the badge shows now: '', 'running' or a run's id and status
  private measuring: number | null = null; // timer of the "measuring…" state

  constructor(private readonly cell: Cell<ICellModel>) {
    super();
    this.addClass('ek-badge');
    this.cell.model.metadataChanged.connect(this.onMetadata, this);
    (this.cell.model as ICodeCellModel).outputs.changed.connect(this.onOutputs, this);
    this.markOnlyRun();
    this.refresh();
  }

  dispose(): void {
    if (this.measuring !== null) {
      window.clearTimeout(this.measuring);
    }
    if (!this.isDisposed && !this.cell.isDisposed) {
      this.cell.model.metadataChanged.disconnect(this.onMetadata, this);
      (this.cell.model as ICodeCellModel).outputs.changed.disconnect(this.onOutputs, this);
    }
    super.dispose();
  }

  private onMetadata(): void {
    this.refresh();
  }

  private onOutputs(_: unknown, change: IOutputAreaModel.ChangedArgs): void {
    this.markOnlyRun();
    if (concernsRun(change)) {
      this.refresh();
    }
  }

  /** A cell whose only output is its run (drawn as nothing) shows no output area. */
  private markOnlyRun(): void {
    const outputs = (this.cell.model as ICodeCellModel).outputs;
    let only = outputs.length > 0;
    for (let i = 0; only && i < outputs.length; i++) {
      only = outputs.get(i).data[MIME] !== undefined;
    }
    this.cell.node.classList.toggle('ek-only-run', only);
  }

  /** Redraw from the metadata (or the "measuring…" output); only when it changed. */
  refresh(force = false): void {
    const model = this.cell.model as ICodeCellModel;
    const node = this.node;
    const run = asRun(model.getMetadata(METADATA_KEY));
    const running = outputRun(model) === 'running';
    if (this.measuring !== null) {
      window.clearTimeout(this.measuring);
      this.measuring = null;
    }
    if (running && this.shown !== 'running' && !force) {
      this.measuring = window.setTimeout(() => {
        this.measuring = null;
        this.refresh(true);
      }, MEASURING_AFTER_MS);
      return;
    }
    const key = running ? 'running' : run ? `${run.run_id}/${run.status}/${run.total_j}` : '';
    if (key === this.shown) {
      return;
    }
    this.shown = key;
    node.classList.remove('ek-badge-estimate', 'ek-badge-running');
    if (running) {
      node.classList.add('ek-badge-running');
      node.textContent = '⚡ measuring…';
      node.title = 'energykernel is measuring this cell';
      node.dataset.status = 'running';
    } else if (!run) {
      node.textContent = ''; // empty: hidden by CSS
      node.title = '';
      delete node.dataset.status;
    } else {
      render(node, run);
    }
  }
}

function render(node: HTMLElement, run: IRun): void {
  const estimate = isEstimate(run);
  const methods = [...new Set(COMPONENTS.filter(c => c in run.method).map(c => run.method[c]))];
  node.classList.toggle('ek-badge-estimate', estimate);
  node.dataset.status = run.status;
  node.dataset.totalJ = String(run.total_j);
  node.dataset.durationS = String(run.duration_s);
  node.dataset.task = run.task;
  node.textContent = '';
  const add = (cls: string, text: string) => {
    const span = document.createElement('span');
    span.className = cls;
    span.textContent = text;
    node.appendChild(span);
    return span;
  };
  add('ek-badge-icon', '⚡');
  add('ek-badge-energy', si(run.total_j, 'J'));
  add('ek-badge-method', estimate ? 'estimate' : methods.join('+'));
  add('ek-badge-duration', duration(run.duration_s));
  if (typeof run.emissions_g === 'number') {
    node.dataset.emissionsG = String(run.emissions_g);
    add('ek-badge-carbon', si(run.emissions_g, 'gCO2e') + (run.region ? ` (${run.region})` : ''));
  } else {
    delete node.dataset.emissionsG;
  }
  if (run.status !== 'ok') {
    add('ek-badge-status', run.status);
  }
  const lines = [`${run.task}: ${si(run.total_j, 'J')} in ${duration(run.duration_s)}`];
  for (const c of COMPONENTS) {
    if (!(c in run.energy_j)) {
      continue;
    }
    const bounds = run.energy_bounds_j?.[c];
    const range = bounds ? ` (${si(bounds[0], 'J')}–${si(bounds[1], 'J')})` : '';
    const how = run.method[c] === 'estimate' ? 'estimate, from a model' : `read from ${run.method[c]}`;
    lines.push(`  ${c}: ${si(run.energy_j[c], 'J')}${range} — ${how}`);
  }
  if (typeof run.emissions_g === 'number') {
    lines.push(`  carbon: ${si(run.emissions_g, 'gCO2e')}${run.region ? ' at ' + run.region + "'s grid intensity" : ''}`);
  }
  node.title = lines.join('\n');
}

const attached = new WeakSet<object>();

function attachCell(cell: Cell<ICellModel>): void {
  if (!(cell instanceof CodeCell) || attached.has(cell)) {
    return;
  }
  attached.add(cell);
  void cell.ready.then(() => {
    if (cell.isDisposed) {
      return;
    }
    const layout = cell.layout as PanelLayout;
    const badge = new Badge(cell);
    // right below the input, where the ⚡ line appears in other frontends
    const input = cell.inputArea;
    const at = input ? layout.widgets.findIndex(w => w.node.contains(input.node)) : -1;
    layout.insertWidget(at >= 0 ? at + 1 : layout.widgets.length, badge);
    cell.disposed.connect(() => badge.dispose());
  });
}

function attachModel(model: ICellModel): void {
  if (model.type !== 'code' || attached.has(model)) {
    return;
  }
  attached.add(model);
  const code = model as ICodeCellModel;
  code.outputs.changed.connect((_, change) => {
    if (concernsRun(change)) {
      harvest(code);
    }
  });
  harvest(code);
}

/** Badges on every code cell of ``panel``, now and as cells are added. */
export function trackNotebook(panel: NotebookPanel): void {
  const sync = () => {
    const model = panel.content.model;
    if (!model) {
      return;
    }
    for (let i = 0; i < model.cells.length; i++) {
      attachModel(model.cells.get(i));
    }
    panel.content.widgets.forEach(attachCell);
  };
  void panel.context.ready.then(() => {
    sync();
    panel.content.model?.cells.changed.connect(() => setTimeout(sync, 0));
  });
}

/** A cell that ran with no measured run in its outputs keeps no stale one. */
export function forgetUnmeasured(): void {
  NotebookActions.executed.connect((_, { cell }) => {
    if (cell.model.type !== 'code') {
      return;
    }
    const model = cell.model as ICodeCellModel;
    if (outputRun(model) === null && model.getMetadata(METADATA_KEY) !== undefined) {
      model.deleteMetadata(METADATA_KEY);
    }
  });
}
