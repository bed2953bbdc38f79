/**
 * A cell's run as the kernel side sends it (mime type MIME) and as the cell's
 * metadata["energykernel"] keeps it (the same keys; `energykernel measure` writes a subset).
 */

/** The mime type of a measured cell's run, next to its text/html ⚡ line. */
export const MIME = 'application/vnd.energykernel.run+json';

/** The key of the run in a cell's metadata. */
export const METADATA_KEY = 'energykernel';

export interface IRun {
  task: string;
  instance?: string;
  energy_j: { [component: string]: number };
  total_j: number;
  method: { [component: string]: string };
  duration_s: number;
  status: string;
  run_id?: string;
  energy_bounds_j?: { [component: string]: [number, number] };
  emissions_g?: number;
  region?: string;
  [key: string]: unknown;
}

/** A finished run, or null for anything else (a "measuring…" line, foreign data). */
export function asRun(value: unknown): IRun | null {
  if (!value || typeof value !== 'object') {
    return null;
  }
  const run = value as IRun;
  if (typeof run.total_j !== 'number' || typeof run.duration_s !== 'number' ||
      !run.energy_j || !run.method || run.status === 'running') {
    return null;
  }
  return run;
}

/** True if some component's figure is an estimate (or simulated), not a counter reading. */
export function isEstimate(run: IRun): boolean {
  return Object.values(run.method).some(m => m === 'estimate' || m === 'simulated');
}
