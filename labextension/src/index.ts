/**
 * energykernel in JupyterLab: a badge on each measured cell, live power and the
 * notebook's energy in the status bar, and a command to turn auto mode on and off.
 */
import {
  ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, ToolbarButton } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { IStatusBar } from '@jupyterlab/statusbar';

import { forgetUnmeasured, trackNotebook } from './badges';
import { runOutputFactory } from './output';
import { PowerStatus } from './status';
import { autoMode, COMMAND, mayChangeAuto, recheck, refresh, toggle } from './toggle';

const badges: JupyterFrontEndPlugin<void> = {
  id: 'energykernel:badges',
  description: 'Energy badges on measured cells, from their metadata.',
  autoStart: true,
  requires: [INotebookTracker, IRenderMimeRegistry],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker,
             rendermime: IRenderMimeRegistry) => {
    rendermime.addFactory(runOutputFactory, 0);
    tracker.widgetAdded.connect((_, panel) => trackNotebook(panel));
    tracker.forEach(trackNotebook);
    forgetUnmeasured();
  }
};

const status: JupyterFrontEndPlugin<void> = {
  id: 'energykernel:status',
  description: 'Live power of the machine and the energy of the current notebook.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IStatusBar],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker, bar: IStatusBar | null) => {
    if (!bar) {
      return;
    }
    const item = new PowerStatus(tracker);
    bar.registerStatusItem('energykernel:power', { item, align: 'left', rank: 10 });
  }
};

const auto: JupyterFrontEndPlugin<void> = {
  id: 'energykernel:auto',
  description: 'Turn energykernel auto mode on and off in the current kernel.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILabShell],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker,
             palette: ICommandPalette | null) => {
    const buttons = new Set<ToolbarButton>();
    const changed = () => {
      app.commands.notifyCommandChanged(COMMAND);
      const on = autoMode(tracker.currentWidget);
      buttons.forEach(b => b.pressed = on);
    };
    app.commands.addCommand(COMMAND, {
      label: 'Measure every cell (energykernel auto mode)',
      caption: 'Turn energykernel auto mode on or off in this notebook\'s kernel',
      isEnabled: () => !!tracker.currentWidget?.sessionContext.session?.kernel,
      isToggled: () => autoMode(tracker.currentWidget),
      execute: async () => {
        const on = await toggle(tracker);
        changed();
        return on;
      }
    });
    palette?.addItem({ command: COMMAND, category: 'energykernel' });
    const watch = (panel: NotebookPanel) => {
      const button = new ToolbarButton({
        className: 'ek-auto-button',
        label: '⚡ auto',
        tooltip: 'energykernel: measure every cell (auto mode on/off)',
        onClick: () => void app.commands.execute(COMMAND),
      });
      buttons.add(button);
      button.disposed.connect(() => buttons.delete(button));
      panel.toolbar.insertItem(10, 'energykernel-auto', button);
      const ask = () => void refresh(panel).then(changed).catch(() => undefined);
      panel.sessionContext.kernelChanged.connect(ask);
      panel.sessionContext.ready.then(ask).catch(() => undefined);
    };
    tracker.widgetAdded.connect((_, panel) => watch(panel));
    tracker.forEach(watch);
    tracker.currentChanged.connect(changed);
    // auto mode typed by hand: the button and the command follow the kernel's state
    NotebookActions.executed.connect((_, { notebook, cell }) => {
      if (cell.model.type !== 'code' || !mayChangeAuto(cell.model.sharedModel.getSource())) {
        return;
      }
      const panel = tracker.find(p => p.content === notebook) ?? null;
      void recheck(panel).then(changed).catch(() => undefined);
    });
  }
};

export default [badges, status, auto];
