"""Prompt campaigns: each prompt sent to an LLM service inside its own measured window.

The per-prompt Dataset (dim ``prompt``) holds the prompt and response, token counts,
duration, time to first token, energy per component and its method, task type, model,
status, error and notes (fields are listed in :mod:`.prompt_records`). Each prompt is also
an ordinary run (``task = "llm/<task_type>"``) in ``ek.runs()`` and the process's run log;
and a campaign log ``<log_dir>/llm-<instance>-<pid>-<time>.jsonl`` gets one line per
finished prompt (written and flushed before the next prompt starts), so ``resume=`` works
after a crash too.

Token counts come from the service's ``usage``; where it sends none (or none that is a
count: ``notes`` says so), they are approximated as ceil(characters / 4) (OpenAI's rule of
thumb for English), and ``token_source`` says which (``"usage"`` or ``"approx"``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..core.units import si
from ..core.window import Window
from .client import DEFAULT_MAX_RESPONSE_BYTES, ChatClient, LLMError, is_loopback, public_url
from .prompt_records import CampaignLog, build_dataset, load_prompts, rows_of, save_prompts

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["approx_tokens", "build_dataset", "load_prompts", "measure_prompts",
           "normalize_prompts", "prompt_keys", "save_prompts"]

CHARS_PER_TOKEN = 4.0
DEFAULT_TASK_TYPE = "general"


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
        h = hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:20]
        seen[h] = seen.get(h, 0) + 1
        keys.append(f"{h}#{seen[h]}")
    return keys


def measure_prompts(prompts: Any, *, base_url: str, model: str, api_key: str | None = None,
                    task_type: str | Sequence[str] | None = None, max_tokens: int | None = None,
                    temperature: float | None = 0, stream: bool = True, timeout_s: float = 60.0,
                    retries: int = 2, resume: xr.Dataset | str | os.PathLike | None = None,
                    progress: bool = True, backoff_s: float = 0.5,
                    instance: str | None = None, components: Iterable[str] | None = None,
                    campaign_log: bool = True,
                    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> xr.Dataset:
    """Send each prompt to an OpenAI-compatible service, each in its own measured window.

    Args:
        prompts: a string, a list of strings or chats (lists of ``{"role", "content"}``),
            or a table (DataFrame / list of dicts / earlier result) with a ``prompt`` or
            ``messages`` column and optionally ``task_type``.
        base_url: e.g. ``http://localhost:11434/v1`` (Ollama). A host other than this
            machine's loopback is marked ``energy_scope="client-only"``: the service's own
            energy is not seen. Credentials in it (``http://user:pw@host``) are sent as
            Basic auth and stored nowhere: ``service`` is the URL without them.
        api_key: else ``ENERGYKERNEL_LLM_API_KEY``, else ``OPENAI_API_KEY``. Sent only to
            ``base_url``; never stored, logged or put in an error message.
        task_type: label for prompts without a ``task_type`` column (one, or one per prompt).
        timeout_s: deadline of each attempt: connecting, the headers and the whole answer.
            A prompt past it (after its retries) is an error naming ``timeout_s``.
        retries, backoff_s: extra attempts for transient failures, waiting
            ``backoff_s``·2^k between them.
        resume: an earlier result (Dataset, ``.nc`` path, campaign log or log directory);
            prompts it holds with status ``ok`` (same model and messages) are copied, not sent.
        campaign_log: also write the campaign log in ``ENERGYKERNEL_LOG_DIR``.
        max_response_bytes: largest answer read, in bytes (default 16 MiB); a prompt whose
            answer is larger is not read further and is an error naming the cap.

    Returns the Dataset with dim ``prompt`` described in the module docstring. A prompt
    that fails is kept with ``status="error"`` and its error; the campaign goes on. Whatever
    the service sends back, every string stored (Dataset, campaign log, runs) has the key,
    the URL password and the Basic token redacted, and what it sent that could not be used
    (a token count out of range, say) is in ``notes``.
    """
    if not isinstance(model, str) or not model:
        raise ValueError("model must be a non-empty string, e.g. 'llama3.2'")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise ValueError(f"max_tokens={max_tokens!r}: must be a positive integer or None")
    items = normalize_prompts(prompts, task_type)
    keys = prompt_keys([m for m, _ in items], model)
    client = ChatClient(base_url, api_key=api_key, timeout_s=timeout_s, retries=retries,
                        backoff_s=backoff_s, max_response_bytes=max_response_bytes)
    clean = client.clean
    service = public_url(base_url)
    scope = "machine" if is_loopback(base_url) else "client-only"
    log: CampaignLog | None = None
    from ..jupyter.progress import progress_bar

    rows: list[dict[str, Any]] = []
    bar = progress_bar(total=len(items), disable=not progress, desc=f"llm {clean(model)}",
                       unit="prompt")
    try:
        done = _resume_rows(resume)
        if campaign_log:
            log = CampaignLog({"model": clean(model), "service": service, "energy_scope": scope,
                               "stream": bool(stream), "created_s": time.time()})
        for (messages, tt), key in zip(items, keys, strict=True):
            if key in done:
                rows.append(_scrub({**done[key], "resumed": True, "task_type": tt}, clean))
                bar.update(1)
                continue
            row = _measure_one(client, messages, clean(tt), key, model=model,
                               max_tokens=max_tokens, temperature=temperature, stream=stream,
                               instance=instance, components=components)
            row = _scrub({**row, "service": service, "energy_scope": scope}, clean)
            rows.append(row)
            if log is not None:
                log.write(row)
            bar.update(1)
            bar.set_postfix_str(f"{si(sum(row['energy_j'].values()), 'J')} {row['status']}")
    finally:
        bar.close()
        client.close()
        if log is not None:
            log.close()
    attrs = {"model": clean(model), "service": service, "energy_scope": scope,
             "stream": int(bool(stream)), "temperature": float(temperature or 0),
             "max_tokens": -1 if max_tokens is None else int(max_tokens)}
    return build_dataset(rows, attrs)


def _scrub(row: dict[str, Any], clean: Callable[[str], str]) -> dict[str, Any]:
    """``row`` with every string passed through ``clean`` (secrets redacted, characters
    that NetCDF and UTF-8 cannot store replaced), whatever field it is in."""
    return {k: clean(v) if isinstance(v, str) else v for k, v in row.items()}


def _resume_rows(resume: Any) -> dict[str, dict[str, Any]]:
    if resume is None:
        return {}
    ds = resume if hasattr(resume, "data_vars") else load_prompts(resume)
    if "prompt_key" not in ds:
        raise ValueError("resume: not a prompt Dataset from measure_prompts (no 'prompt_key')")
    return {r["prompt_key"]: r for r in rows_of(ds) if r.get("status") == "ok"}


def _measure_one(client: ChatClient, messages: list[dict], task_type: str, key: str, *,
                 model: str, max_tokens: int | None, temperature: float | None, stream: bool,
                 instance: str | None, components: Iterable[str] | None) -> dict[str, Any]:
    """One prompt in one measured window; failures become an ``error`` row. ``task_type``
    is already clean: it names the run."""
    users = [m for m in messages if m.get("role") == "user"]
    prompt_text = _content_text((users or messages)[-1]["content"])
    all_text = "\n".join(_content_text(m["content"]) for m in messages)
    row: dict[str, Any] = {"prompt_text": prompt_text, "task_type": task_type,
                           "messages": json.dumps(messages, ensure_ascii=False),
                           "model": model, "prompt_key": key, "error": "", "response_text": "",
                           "finish_reason": "", "notes": "", "ttft": None, "resumed": False}
    window = Window(f"llm/{task_type}", instance=instance, components=components,
                    scope="machine").start()
    try:
        result = client.chat(messages, model=model, max_tokens=max_tokens,
                             temperature=temperature, stream=stream)
    except KeyboardInterrupt:
        window.stop(status="interrupted", error="KeyboardInterrupt")
        raise
    except Exception as exc:  # LLMError, or a bug or an odd service: keep the campaign going
        error = client.clean(f"{type(exc).__name__}: {exc}")[:500]
        m = window.stop(status="error", error=error)
        row.update(status="error", error=error,
                   attempts=exc.attempts if isinstance(exc, LLMError) else 1,
                   prompt_tokens=approx_tokens(all_text), response_tokens=0,
                   token_source="approx")
    else:
        m = window.stop()
        from_usage = result.prompt_tokens is not None and result.completion_tokens is not None
        row.update(status="ok", response_text=result.text, attempts=result.attempts,
                   ttft=result.ttft_s, finish_reason=result.finish_reason or "",
                   notes="; ".join(result.notes),
                   token_source="usage" if from_usage else "approx",
                   prompt_tokens=result.prompt_tokens if from_usage else approx_tokens(all_text),
                   response_tokens=(result.completion_tokens if from_usage
                                    else approx_tokens(result.text)))
    row.update(duration=m.duration_s, energy_j=m.energy_j, method=m.method,
               start_s=m.start.timestamp(), run_id=m.id)
    return row
