/**
 * Numbers as energykernel's Python side writes them (energykernel/core/units.py).
 */

const PREFIXES: [number, string][] = [
  [1e9, 'G'], [1e6, 'M'], [1e3, 'k'], [1, ''], [1e-3, 'm'], [1e-6, 'µ'], [1e-9, 'n']
];

/** `value` with 3 significant digits, like Python's `format(value, '.3g')`: an exact tie
 * rounds to even there (toPrecision rounds it up), so 41.25 is 41.2 in both. */
export function g3(value: number): string {
  let text = value.toPrecision(3);
  const exact = Math.abs(value).toExponential(99); // every digit of the double
  const m = /^(\d)\.(\d)(\d)50*e([+-]\d+)$/.exec(exact);
  if (m && Number(m[3]) % 2 === 0) {
    text = (Math.sign(value) * Number(`${m[1]}.${m[2]}${m[3]}e${m[4]}`)).toPrecision(3);
  }
  return String(parseFloat(text));
}

/** `si(1234.5, 'J') === '1.23 kJ'`. */
export function si(value: number, unit: string): string {
  if (!Number.isFinite(value)) {
    return `— ${unit}`;
  }
  if (value === 0) {
    return `0 ${unit}`;
  }
  const magnitude = Math.abs(value);
  let [factor, prefix] = PREFIXES[PREFIXES.length - 1];
  for (const [f, p] of PREFIXES) {
    if (magnitude >= f) {
      [factor, prefix] = [f, p];
      break;
    }
  }
  return `${g3(value / factor)} ${prefix}${unit}`;
}

/** `duration(0.25) === '250 ms'`, `duration(3725) === '62 min 5 s'`. */
export function duration(seconds: number): string {
  if (seconds < 1) {
    return `${g3(seconds * 1e3)} ms`;
  }
  if (seconds < 120) {
    return `${g3(seconds)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  const secs = seconds - minutes * 60;
  if (minutes < 120) {
    return `${minutes} min ${Math.round(secs)} s`;
  }
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}
