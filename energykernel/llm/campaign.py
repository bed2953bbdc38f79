"""Prompt campaigns: each prompt sent to an LLM service inside its own measured window.

The per-prompt Dataset (dim ``prompt``) holds the prompt and response, token counts,
duration, time to first token, energy per component and its method, task type, model,
status and error. Each prompt is also an ordinary run (``task = "llm/<task_type>"``) in
``ek.runs()`` and the process's run log; and a campaign log
``<log_dir>/llm-<instance>-<pid>-<time>.jsonl`` gets one line per finished prompt (written
and flushed before the next prompt starts), so ``resume=`` works after a crash too.

Token counts come from the service's ``usage``; where it sends none, they are approximated
as ceil(characters / 4) (OpenAI's rule of thumb for English), and ``token_source`` says
which (``"usage"`` or ``"approx"``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from ..core._atomic import write_netcdf_atomic
from ..core.config import settings
from ..core.units import COMPONENTS
from ..core.window import Window
from .client import ChatClient, LLMError, is_loopback, public_url, redact, resolve_api_key

if TYPE_CHECKING:
    import xarray as xr

CHARS_PER_TOKEN = 4.0
DEFAULT_TASK_TYPE = "general"
CAMPAIGN_LOG_PREFIX = "llm-"
SCHEMA_VERSION = 1

# Per-prompt fields: name -> (dtype, fill, attrs)
_FIELDS: dict[str, tuple[Any, Any, dict[str, str]]] = {
    "prompt_text": (object, "", {"long_name": "last user message"}),
    "messages": (object, "", {"long_name": "the whole conversation sent, as JSON"}),
    "response_text": (object, "", {"long_name": "the service's answer"}),
    "task_type": (object, "", {}),
    "model": (object, "", {}),
    "service": (object, "", {"long_name": "base_url without credentials or query"}),
    "energy_scope": (object, "", {"long_name": "machine (service on this host) or "
                                               "client-only (remote service, not seen)"}),
    "status": (object, "", {"long_name": "ok or error"}),
    "error": (object, "", {}),
    "finish_reason": (object, "", {}),
    "token_source": (object, "", {"long_name": "usage (from the service) or approx "
                                               "(ceil(chars / 4))"}),
    "prompt_tokens": (np.int64, 0, {"units": "tokens"}),
    "response_tokens": (np.int64, 0, {"units": "tokens"}),
    "attempts": (np.int64, 0, {"long_name": "requests sent (1 + retries used)"}),
    "duration": (np.float64, np.nan, {"units": "s", "long_name": "measured window"}),
    "ttft": (np.float64, np.nan, {"units": "s", "long_name": "time to first token "
                                                            "(streaming only)"}),
    "run_id": (object, "", {"long_name": "id of the run in ek.runs()"}),
    "prompt_key": (object, "", {"long_name": "hash of model and messages, #occurrence"}),
    "resumed": (bool, False, {"long_name": "copied from the resume= dataset"}),
}


def approx_tokens(text: str) -> int:
    """Approximate token count: ceil(characters / 4)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _check_messages(messages: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: a chat must be a non-empty list of messages")
    for j, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"{where}, message {j}: expected a dict with 'role' and 'content'")
    return messages


def _is_chat(obj: Any) -> bool:
    return (isinstance(obj, list) and bool(obj) and all(isinstance(m, dict) for m in obj)
            and all("role" in m for m in obj))


def normalize_prompts(prompts: Any, task_type: str | Sequence[str] | None = None
                      ) -> list[tuple[list[dict[str, Any]], str]]:
    """``(messages, task_type)`` per prompt, from strings, chats, a table or a prompt Dataset.

    A table (pandas DataFrame, list of dicts, or a Dataset from :func:`measure_prompts`)
    needs a ``prompt`` (text) or ``messages`` (chat) column; its ``task_type`` column, where
    present and non-empty, wins over the ``task_type`` argument. A list of dicts that all
    have a ``role`` is one chat.
    """
    if isinstance(prompts, str) or _is_chat(prompts):
        prompts = [prompts]
    rows: list[dict[str, Any]]
    if hasattr(prompts, "to_dict") and hasattr(prompts, "columns"):  # pandas DataFrame
        rows = prompts.to_dict("records")
    elif hasattr(prompts, "data_vars") and "prompt" in getattr(prompts, "dims", {}):
        rows = _dataset_rows(prompts)
    elif isinstance(prompts, Iterable):
        rows = [p if isinstance(p, dict) else {"prompt": p} for p in prompts]
    else:
        raise TypeError(f"prompts: expected strings, chats or a table, not "
                        f"{type(prompts).__name__}")
    if isinstance(task_type, str) or task_type is None:
        defaults = [task_type or DEFAULT_TASK_TYPE] * len(rows)
    else:
        defaults = [str(t) for t in task_type]
        if len(defaults) != len(rows):
            raise ValueError(f"task_type: {len(defaults)} labels for {len(rows)} prompts")
    out = []
    for j, row in enumerate(rows):
        where = f"prompts[{j}]"
        raw = row.get("messages")
        if isinstance(raw, str) and raw.startswith("["):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise ValueError(f"{where}: 'messages' is not a JSON list of messages") from None
        if not isinstance(raw, list):
            text = row.get("prompt")
            if isinstance(text, list):
                raw = text
            elif isinstance(text, str) and text:
                raw = [{"role": "user", "content": text}]
            else:
                raise ValueError(f"{where}: expected a non-empty prompt string or a chat "
                                 f"(got {type(text).__name__}); a table needs a 'prompt' "
                                 "or 'messages' column")
        tt = row.get("task_type")
        tt = tt if isinstance(tt, str) and tt else defaults[j]
        if "/" in tt or not tt.strip():
            raise ValueError(f"{where}: task_type {tt!r} must be a non-empty name without '/'")
        out.append((_check_messages(raw, where), tt))
    return out


def _dataset_rows(ds: xr.Dataset) -> list[dict[str, Any]]:
    names = [n for n in ("prompt_text", "messages", "task_type") if n in ds]
    return [{n.replace("_text", ""): ds[n].values[j] for n in names}
            for j in range(ds.sizes["prompt"])]


def prompt_keys(messages_list: Sequence[list[dict]], model: str) -> list[str]:
    """Stable key per prompt: hash of model and messages, plus its occurrence number."""
    seen: dict[str, int] = {}
    keys = []
    for messages in messages_list:
        blob = json.dumps([model, messages], sort_keys=True, ensure_ascii=False)
        h = hashlib.sha256(blob.encode()).hexdigest()[:20]
        seen[h] = seen.get(h, 0) + 1
        keys.append(f"{h}#{seen[h]}")
    return keys


def build_dataset(rows: Sequence[dict[str, Any]], attrs: dict[str, Any] | None = None
                  ) -> xr.Dataset:
    """The per-prompt Dataset from row dicts (fields of ``_FIELDS`` plus ``energy_j``,
    ``method`` (dicts by component) and ``start_s``)."""
    import xarray as xr

    n = len(rows)
    comps = [c for c in COMPONENTS if any(c in r.get("energy_j", {}) for r in rows)]
    energy = np.full((n, len(comps)), np.nan)
    method = np.full((n, len(comps)), "", dtype=object)
    for j, r in enumerate(rows):
        for k, c in enumerate(comps):
            if c in r.get("energy_j", {}):
                energy[j, k] = r["energy_j"][c]
                method[j, k] = r.get("method", {}).get(c, "")
    data: dict[str, Any] = {}
    for name, (dtype, fill, a) in _FIELDS.items():
        vals = [r.get(name, fill) for r in rows]
        vals = [fill if v is None else v for v in vals]
        data[name] = ("prompt", np.array(vals, dtype=dtype), dict(a))
    data["energy"] = (("prompt", "component"), energy, {"units": "J"})
    data["method"] = (("prompt", "component"), method,
                      {"long_name": "how energy was obtained (rapl, nvml, estimate, …)"})
    total = np.where(np.isnan(energy).all(axis=1), np.nan, np.nansum(energy, axis=1)) if comps \
        else np.full(n, np.nan)
    data["energy_total"] = ("prompt", total, {"units": "J", "long_name": "sum over components"})
    start = np.array([r.get("start_s", np.nan) for r in rows], dtype=np.float64) * 1e9
    start = np.where(np.isnan(start), np.iinfo(np.int64).min, start).astype(np.int64)
    data["start"] = ("prompt", start.astype("datetime64[ns]"), {"long_name": "start time (UTC)"})
    base = {"title": "energykernel LLM prompt campaign", "energykernel_llm_schema":
            SCHEMA_VERSION, "token_approximation": "ceil(characters / 4) where token_source "
            "is 'approx'"}
    return xr.Dataset(data, coords={"prompt": np.arange(n),
                                    "component": np.array(comps, dtype=object)},
                      attrs={**base, **(attrs or {})})


def _rows_of(ds: xr.Dataset) -> list[dict[str, Any]]:
    comps = [str(c) for c in ds.component.values]
    start = ds.start.values.astype("datetime64[ns]").astype(np.int64) / 1e9
    rows = []
    for j in range(ds.sizes["prompt"]):
        r: dict[str, Any] = {n: ds[n].values[j].item() if hasattr(ds[n].values[j], "item")
                             else ds[n].values[j] for n in _FIELDS if n in ds}
        e = ds.energy.values[j]
        r["energy_j"] = {c: float(e[k]) for k, c in enumerate(comps) if not np.isnan(e[k])}
        r["method"] = {c: str(ds.method.values[j, k]) for k, c in enumerate(comps)
                       if not np.isnan(e[k])}
        r["start_s"] = float(start[j])
        rows.append(r)
    return rows


def save_prompts(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a prompt Dataset to NetCDF (atomically); read it back with :func:`load_prompts`."""
    path = Path(path)
    if path.suffix.lower() not in (".nc", ".nc4"):
        raise ValueError(f"save_prompts({str(path)!r}): use a file name ending in .nc")
    if not path.parent.exists():
        raise FileNotFoundError(f"save_prompts({str(path)!r}): directory does not exist")
    return write_netcdf_atomic(ds, path)


def load_prompts(path: str | os.PathLike) -> xr.Dataset:
    """A prompt Dataset from a ``.nc`` file, a campaign log (``llm-*.jsonl``) or a directory
    of them (every finished prompt of every campaign logged there)."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"load_prompts({str(path)!r}): no such file or directory")
    if path.is_dir() or path.suffix == ".jsonl":
        files = sorted(path.glob(f"{CAMPAIGN_LOG_PREFIX}*.jsonl")) if path.is_dir() else [path]
        rows: list[dict[str, Any]] = []
        for f in files:
            for number, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash
                if isinstance(obj, dict) and obj.get("kind") == "llm_prompt":
                    rows.append(obj)
                elif not isinstance(obj, dict) or "kind" not in obj:
                    raise ValueError(f"{f}:{number}: not an energykernel campaign log line")
        return build_dataset(rows)
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds.load()
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable prompt dataset ({exc})") from None
    if "prompt_key" not in ds:
        raise ValueError(f"{path}: not an energykernel prompt dataset (no 'prompt_key')")
    return ds


class _CampaignLog:
    """One JSON line per finished prompt, flushed (opened on the first line)."""

    def __init__(self, header: dict[str, Any]) -> None:
        self.header, self._f, self.failed = header, None, False

    def write(self, row: dict[str, Any]) -> None:
        try:
            self._write(row)
        except OSError as exc:
            if not self.failed:
                warnings.warn(f"energykernel: cannot write the LLM campaign log ({exc}); prompt "
                              "texts are kept in memory only (runs are still logged)",
                              RuntimeWarning, stacklevel=3)
            self.failed = True

    def _write(self, row: dict[str, Any]) -> None:
        if self.failed:
            return
        if self._f is None:
            log_dir = settings().log_dir
            log_dir.mkdir(parents=True, exist_ok=True)
            inst = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in settings().instance)
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            path = log_dir / f"{CAMPAIGN_LOG_PREFIX}{inst}-{os.getpid()}-{stamp}-{id(self):x}.jsonl"
            self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._f.write(json.dumps({"kind": "llm_campaign", **self.header}) + "\n")
        self._f.write(json.dumps({"kind": "llm_prompt", **row}, ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


def measure_prompts(prompts: Any, *, base_url: str, model: str, api_key: str | None = None,
                    task_type: str | Sequence[str] | None = None, max_tokens: int | None = None,
                    temperature: float | None = 0, stream: bool = True, timeout_s: float = 60.0,
                    retries: int = 2, resume: xr.Dataset | str | os.PathLike | None = None,
                    progress: bool = True, backoff_s: float = 0.5,
                    instance: str | None = None, components: Iterable[str] | None = None,
                    campaign_log: bool = True) -> xr.Dataset:
    """Send each prompt to an OpenAI-compatible service, each in its own measured window.

    Args:
        prompts: a string, a list of strings or chats (lists of ``{"role", "content"}``),
            or a table (DataFrame / list of dicts / earlier result) with a ``prompt`` or
            ``messages`` column and optionally ``task_type``.
        base_url: e.g. ``http://localhost:11434/v1`` (Ollama). A host other than this
            machine's loopback is marked ``energy_scope="client-only"``: the service's own
            energy is not seen.
        api_key: else ``ENERGYKERNEL_LLM_API_KEY``, else ``OPENAI_API_KEY``. Sent only to
            ``base_url``; never stored, logged or put in an error message.
        task_type: label for prompts without a ``task_type`` column (one, or one per prompt).
        timeout_s, retries, backoff_s: per-attempt time limit; extra attempts for transient
            failures, waiting ``backoff_s``·2^k between them.
        resume: an earlier result (Dataset, ``.nc`` path, campaign log or log directory);
            prompts it holds with status ``ok`` (same model and messages) are copied, not sent.
        campaign_log: also write the campaign log in ``ENERGYKERNEL_LOG_DIR``.

    Returns the Dataset with dim ``prompt`` described in the module docstring. A prompt
    that fails is kept with ``status="error"`` and its error; the campaign goes on.
    """
    if not isinstance(model, str) or not model:
        raise ValueError("model must be a non-empty string, e.g. 'llama3.2'")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise ValueError(f"max_tokens={max_tokens!r}: must be a positive integer or None")
    items = normalize_prompts(prompts, task_type)
    keys = prompt_keys([m for m, _ in items], model)
    client = ChatClient(base_url, api_key=api_key, timeout_s=timeout_s, retries=retries,
                        backoff_s=backoff_s)
    secrets = tuple(s for s in (resolve_api_key(api_key), urlsplit(base_url).password) if s)
    service = public_url(base_url)
    scope = "machine" if is_loopback(base_url) else "client-only"
    done = _resume_rows(resume, secrets)
    header = {"model": model, "service": service, "energy_scope": scope, "stream": bool(stream),
              "created_s": time.time()}
    log = _CampaignLog(header) if campaign_log else None
    from tqdm import tqdm

    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(items), disable=not progress, desc=f"llm {model}", unit="prompt")
    try:
        for (messages, tt), key in zip(items, keys, strict=True):
            if key in done:
                rows.append({**done[key], "resumed": True, "task_type": tt})
                bar.update(1)
                continue
            row = _measure_one(client, messages, tt, key, model=model, max_tokens=max_tokens,
                               temperature=temperature, stream=stream, instance=instance,
                               components=components, secrets=secrets)
            row.update(service=service, energy_scope=scope)
            rows.append(row)
            if log is not None:
                log.write(row)
            bar.update(1)
            bar.set_postfix_str(f"{sum(row['energy_j'].values()):.3g} J {row['status']}")
    finally:
        bar.close()
        client.close()
        if log is not None:
            log.close()
    attrs = {"model": model, "service": service, "energy_scope": scope,
             "stream": int(bool(stream)), "temperature": float(temperature or 0),
             "max_tokens": -1 if max_tokens is None else int(max_tokens)}
    return build_dataset(rows, attrs)


def _resume_rows(resume: Any, secrets: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    if resume is None:
        return {}
    ds = resume if hasattr(resume, "data_vars") else load_prompts(resume)
    if "prompt_key" not in ds:
        raise ValueError("resume: not a prompt Dataset from measure_prompts (no 'prompt_key')")
    return {r["prompt_key"]: r for r in _rows_of(ds) if r.get("status") == "ok"}


def _measure_one(client: ChatClient, messages: list[dict], task_type: str, key: str, *,
                 model: str, max_tokens: int | None, temperature: float | None, stream: bool,
                 instance: str | None, components: Iterable[str] | None,
                 secrets: tuple[str, ...]) -> dict[str, Any]:
    """One prompt in one measured window; failures become an ``error`` row."""
    users = [m for m in messages if m.get("role") == "user"]
    prompt_text = _content_text((users or messages)[-1]["content"])
    all_text = "\n".join(_content_text(m["content"]) for m in messages)
    row: dict[str, Any] = {"prompt_text": redact(prompt_text, secrets), "task_type": task_type,
                           "messages": redact(json.dumps(messages, ensure_ascii=False), secrets),
                           "model": model, "prompt_key": key, "error": "", "response_text": "",
                           "finish_reason": "", "ttft": None, "resumed": False}
    window = Window(f"llm/{task_type}", instance=instance, components=components,
                     scope="machine").start()
    try:
        result = client.chat(messages, model=model, max_tokens=max_tokens,
                             temperature=temperature, stream=stream)
    except KeyboardInterrupt:
        window.stop(status="interrupted", error="KeyboardInterrupt")
        raise
    except LLMError as exc:
        error = redact(f"LLMError: {exc}", secrets)
        m = window.stop(status="error", error=error)
        row.update(status="error", error=error, attempts=exc.attempts,
                   prompt_tokens=approx_tokens(all_text), response_tokens=0,
                   token_source="approx")
    except Exception as exc:  # a bug or an odd service: keep the campaign going, say what
        error = redact(f"{type(exc).__name__}: {exc}", secrets)[:500]
        m = window.stop(status="error", error=error)
        row.update(status="error", error=error, attempts=1,
                   prompt_tokens=approx_tokens(all_text), response_tokens=0,
                   token_source="approx")
    else:
        m = window.stop()
        from_usage = result.prompt_tokens is not None and result.completion_tokens is not None
        row.update(status="ok", response_text=result.text, attempts=result.attempts,
                   ttft=result.ttft_s, finish_reason=result.finish_reason or "",
                   token_source="usage" if from_usage else "approx",
                   prompt_tokens=result.prompt_tokens if from_usage else approx_tokens(all_text),
                   response_tokens=(result.completion_tokens if from_usage
                                    else approx_tokens(result.text)))
    row.update(duration=m.duration_s, energy_j=m.energy_j, method=m.method,
               start_s=m.start.timestamp(), run_id=m.id)
    return row
