"""What a prompt campaign tells: correlations, an energy forecast by task type, comparisons.

All functions take the Dataset of :func:`energykernel.llm.measure_prompts` (or several) and
use only its successful prompts (``status == "ok"``). The heatmap is
:func:`energykernel.viz.llm.plot_correlations` (matplotlib imported on demand, no pyplot).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.units import si
from ..viz.llm import plot_correlations
from .campaign import approx_tokens, normalize_prompts

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

CORRELATION_VARIABLES = ("energy", "duration", "ttft", "prompt_tokens", "response_tokens")
_UNITS = {"energy": "J", "duration": "s", "ttft": "s", "prompt_tokens": "tokens",
          "response_tokens": "tokens"}


def _chars(messages_json: str, prompt: str) -> int:
    try:
        msgs = json.loads(messages_json)
        return sum(len(str(m.get("content", ""))) for m in msgs)
    except (ValueError, TypeError, AttributeError):
        return len(prompt)


def frame(ds: xr.Dataset, ok_only: bool = True) -> pd.DataFrame:
    """One row per prompt: energy (J, all components), duration and ttft (s), token counts,
    labels; only successful prompts unless ``ok_only=False``."""
    import pandas as pd

    if "prompt" not in ds.dims or "energy_total" not in ds:
        raise ValueError("expected a prompt Dataset from measure_prompts (dim 'prompt', "
                         "variable 'energy_total')")
    cols: dict[str, Any] = {"energy": ds.energy_total.values}
    for name in ("duration", "ttft", "prompt_tokens", "response_tokens", "attempts"):
        cols[name] = ds[name].values.astype(float)
    for name in ("task_type", "model", "service", "energy_scope", "status", "prompt_text"):
        cols[name] = ds[name].values.astype(str)
    messages = ds["messages"].values if "messages" in ds else [""] * ds.sizes["prompt"]
    cols["prompt_chars"] = [_chars(str(m), str(p)) for m, p in zip(messages, cols["prompt_text"], strict=True)]
    methods = ds.method.values if ds.sizes.get("component", 0) else np.full(
        (ds.sizes["prompt"], 0), "")
    cols["method"] = ["+".join(sorted({str(x) for x in row if x})) for row in methods]
    df = pd.DataFrame(cols)
    return df[df.status == "ok"].reset_index(drop=True) if ok_only else df


def correlations(ds: xr.Dataset, *, method: str = "pearson", plot: bool = False,
                 ax: Any = None) -> xr.DataArray:
    """Correlation matrix of energy, duration, ttft and token counts over successful prompts.

    Variables that are all missing (``ttft`` without streaming) are left out; a constant one
    gives NaN. ``plot=True`` also draws a heatmap (on ``ax`` if given, else a new figure,
    shown in Jupyter).
    """
    import xarray as xr

    df = frame(ds)
    if len(df) < 3:
        raise ValueError(f"correlations need at least 3 successful prompts, got {len(df)}")
    data = df[list(CORRELATION_VARIABLES)].dropna(axis=1, how="all")
    corr = data.corr(method=method)
    names = list(corr.columns)
    da = xr.DataArray(corr.values, dims=("quantity", "quantity_2"),
                      coords={"quantity": names, "quantity_2": names}, name="correlation",
                      attrs={"method": method, "prompts": len(df),
                             "units_of_variables": ", ".join(f"{n} [{_UNITS[n]}]"
                                                             for n in names)})
    if plot:
        plot_correlations(da, ax=ax)
    return da


# -- forecast ---------------------------------------------------------------------------------
def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares intercept (J) and slope (J/token); the mean if x does not vary."""
    if len(x) >= 2 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        return float(intercept), float(slope)
    return float(np.mean(y)), 0.0


def _fit(x: np.ndarray, y: np.ndarray, g: np.ndarray
         ) -> tuple[tuple[float, float], dict[str, tuple[float, float]]]:
    """The overall line, and one line per group whose slope is pulled towards the overall
    slope as if by one prompt of typical spread (partial pooling): a group whose prompts all
    have about the same length keeps the overall slope instead of extrapolating wildly."""
    base = _line(x, y)
    prior = float(np.var(x))  # weight of the overall slope, in units of sum of squares
    groups = {}
    for name in np.unique(g):
        xm, ym = x[g == name], y[g == name]
        dx = xm - xm.mean()
        slope = (float(dx @ (ym - ym.mean())) + prior * base[1]) / (float(dx @ dx) + prior) \
            if prior > 0 else 0.0
        groups[str(name)] = (float(ym.mean() - slope * xm.mean()), slope)
    return base, groups


def _predict(x: np.ndarray, g: np.ndarray, base: tuple[float, float],
             groups: dict[str, tuple[float, float]]) -> np.ndarray:
    coef = np.array([groups.get(str(k), base) for k in g], dtype=float).reshape(-1, 2)
    return coef[:, 0] + coef[:, 1] * x


def _metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    err = pred - y
    nonzero = np.abs(y) > 0
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {"mae_j": float(np.mean(np.abs(err))),
            "mape": float(np.mean(np.abs(err[nonzero]) / np.abs(y[nonzero])))
            if nonzero.any() else np.nan,
            "rmse_j": float(np.sqrt(np.mean(err ** 2))),
            "r2": 1.0 - float(np.sum(err ** 2)) / ss_tot if ss_tot > 0 else np.nan}


@dataclass
class Forecast:
    """Energy forecast: per group ``energy_j = intercept_j + slope × prompt_tokens`` (slopes
    partially pooled towards the overall one), and one line for all prompts (length only). ``cv`` holds the k-fold cross-validated
    error of both; ``gain`` is the relative MAE reduction from knowing the group."""

    by: str
    baseline: tuple[float, float]
    groups: dict[str, tuple[float, float]]
    tokens_per_char: float
    cv: pd.DataFrame
    table: pd.DataFrame
    folds: int
    expected_response_tokens: dict[str, float] = field(default_factory=dict)

    @property
    def gain(self) -> float:
        """1 − MAE(by group) / MAE(length only), cross-validated (> 0: the group helps)."""
        mae = self.cv["mae_j"]
        return float(1.0 - mae.iloc[0] / mae.iloc[1]) if mae.iloc[1] > 0 else np.nan

    def predict(self, prompts: Any, group: str | None = None) -> pd.DataFrame:
        """Forecast energy for strings, chats or a table (with a ``prompt``/``messages`` and a
        ``{by}`` column). ``group`` labels prompts without one. Unseen groups fall back to the
        length-only line (``model_used`` says so). Prompt tokens are estimated from characters
        with the tokens-per-character ratio of the fitted data."""
        import pandas as pd

        items = normalize_prompts(prompts, group if self.by == "task_type" else None)
        if self.by == "task_type":
            labels = [tt for _, tt in items]
        else:
            table = prompts.to_dict("records") if hasattr(prompts, "columns") else (
                prompts if isinstance(prompts, list) else [])
            labels = [str(r.get(self.by) or group or "") if isinstance(r, dict) else
                      str(group or "") for r in table] or [str(group or "")] * len(items)
        chars = np.array([sum(len(str(m.get("content", ""))) for m in msgs)
                          for msgs, _ in items], dtype=float)
        tokens = chars * self.tokens_per_char
        g = np.array(labels, dtype=object)
        out = pd.DataFrame({
            "prompt": [str(msgs[-1].get("content", "")) for msgs, _ in items],
            self.by: labels,
            "prompt_tokens_est": np.round(tokens, 1),
            "energy_j": _predict(tokens, g, self.baseline, self.groups),
            "energy_j_length_only": _predict(tokens, g, self.baseline, {}),
            "response_tokens_expected": [self.expected_response_tokens.get(lbl, np.nan)
                                         for lbl in labels],
            "model_used": [f"by {self.by}" if lbl in self.groups else "length only (unseen "
                           f"{self.by})" for lbl in labels],
        })
        return out

    def __repr__(self) -> str:
        cv = self.cv
        return (f"<Forecast by {self.by!r}: {len(self.groups)} groups, {self.folds}-fold CV "
                f"MAE {si(cv['mae_j'].iloc[0], 'J')} vs length only "
                f"{si(cv['mae_j'].iloc[1], 'J')} "
                f"(gain {self.gain:+.0%})>")


def forecast(ds: xr.Dataset, by: str = "task_type", *, k: int = 5, seed: int = 0) -> Forecast:
    """Fit energy per prompt by ``by`` (default task type) and a length-only baseline; report
    ``k``-fold cross-validated error for both (so the gain of knowing ``by`` shows).

    The per-group table gives energy per response token and per token (prompt + response).
    """
    import pandas as pd

    df = frame(ds)
    if by not in df.columns:
        raise ValueError(f"forecast(by={by!r}): no such per-prompt label; try 'task_type' or "
                         "'model'")
    df = df.dropna(subset=["energy"])
    n = len(df)
    if n < 4:
        raise ValueError(f"forecast needs at least 4 successful prompts with energy, got {n}")
    x = df.prompt_tokens.to_numpy(float)
    y = df.energy.to_numpy(float)
    g = df[by].to_numpy(object)
    k = max(2, min(int(k), n))
    order = np.random.default_rng(seed).permutation(n)
    pred_g, pred_b = np.empty(n), np.empty(n)
    for test in np.array_split(order, k):
        train = np.setdiff1d(order, test)
        base, groups = _fit(x[train], y[train], g[train])
        pred_g[test] = _predict(x[test], g[test], base, groups)
        pred_b[test] = _predict(x[test], g[test], base, {})
    cv = pd.DataFrame([_metrics(y, pred_g), _metrics(y, pred_b)],
                      index=[f"by {by} + length", "length only"])
    base, groups = _fit(x, y, g)
    rows = []
    for name, sub in df.groupby(by, sort=True):
        resp, tot = sub.response_tokens.sum(), (sub.response_tokens + sub.prompt_tokens).sum()
        rows.append({by: name, "prompts": len(sub), "energy_j_mean": sub.energy.mean(),
                     "energy_j_per_response_token": sub.energy.sum() / resp if resp else np.nan,
                     "energy_j_per_token": sub.energy.sum() / tot if tot else np.nan,
                     "response_tokens_mean": sub.response_tokens.mean(),
                     "intercept_j": groups[str(name)][0],
                     "slope_j_per_prompt_token": groups[str(name)][1]})
    table = pd.DataFrame(rows).set_index(by)
    chars = df.prompt_chars.sum()
    tpc = float(df.prompt_tokens.sum() / chars) if chars else 1.0 / approx_tokens("abcd")
    return Forecast(by, base, groups, tpc, cv, table, k,
                    {str(i): float(v) for i, v in table.response_tokens_mean.items()})


# -- comparison --------------------------------------------------------------------------------
def compare(*datasets: xr.Dataset, labels: list[str] | None = None,
            by: str | None = None) -> pd.DataFrame:
    """Energy per token and latency per model / service: ``compare(ds_a, ds_b)``.

    Rows are labelled ``"<model> @ <service>"`` unless ``labels`` (one per dataset) are
    given; ``by="task_type"`` splits each row by task type. Energy figures use successful
    prompts; ``energy_j_per_token_vs_first`` is relative to the first row.
    """
    import pandas as pd

    if not datasets:
        raise ValueError("compare: give at least one prompt Dataset")
    if labels is not None and len(labels) != len(datasets):
        raise ValueError(f"compare: {len(labels)} labels for {len(datasets)} datasets")
    frames = []
    for j, ds in enumerate(datasets):
        df = frame(ds, ok_only=False)
        df["label"] = labels[j] if labels else df.model + " @ " + df.service
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    keys = ["label"] + ([by] if by else [])
    rows = []
    for key, sub in df.groupby(keys, sort=False):
        ok = sub[sub.status == "ok"]
        resp = ok.response_tokens.sum()
        rows.append({
            **dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
            "prompts": len(sub), "errors": int((sub.status != "ok").sum()),
            "energy_j_mean": ok.energy.mean(),
            "energy_j_per_response_token": ok.energy.sum() / resp if resp else np.nan,
            "duration_s_mean": ok.duration.mean(),
            "ttft_s_median": ok.ttft.median(),
            "response_tokens_per_s": resp / ok.duration.sum() if ok.duration.sum() else np.nan,
            "energy_scope": "/".join(sorted(set(sub.energy_scope))),
            "method": "/".join(sorted({m for m in ok.method if m})),
        })
    out = pd.DataFrame(rows).set_index(keys)
    first = out.energy_j_per_response_token.iloc[0]
    out["energy_j_per_token_vs_first"] = out.energy_j_per_response_token / first
    return out
