/**
 * The ⚡ line's output in JupyterLab: the run (mime type MIME) outranks its text/html, and
 * is drawn as nothing, so the cell's badge stands in for the line. Other frontends, and
 * nbconvert, show the line.
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { MIME } from './run';

class RunOutput extends Widget implements IRenderMime.IRenderer {
  constructor() {
    super();
    this.addClass('ek-run-output');
  }

  async renderModel(_model: IRenderMime.IMimeModel): Promise<void> {
    // the badge (drawn from the cell's metadata) shows it
  }
}

export const runOutputFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [MIME],
  defaultRank: 0,
  createRenderer: () => new RunOutput()
};
