"""A small client for OpenAI-compatible Chat Completions (Ollama, llama.cpp, vLLM, hosted).

Streaming (server-sent events, time to first token measured) and non-streaming, a
per-attempt time limit, and retries with exponential backoff for transient failures
(connection errors, timeouts, a connection closed mid-answer, HTTP 408/409/429/5xx, a body
that is not JSON). Client errors (400, 401, 404, …) are not retried.

Secrets: the API key is sent only as ``Authorization: Bearer …`` to ``base_url`` (redirects
are not followed, and environment proxies are ignored for loopback URLs). Every error
message this module produces passes through :func:`redact`, which removes the key,
``Bearer`` tokens, ``api-key=`` query values and passwords in URLs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

ENV_API_KEYS = ("ENERGYKERNEL_LLM_API_KEY", "OPENAI_API_KEY")
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
REDACTED = "[REDACTED]"
_BEARER_RE = re.compile(r"(?i)((?:bearer|basic)\s+)[^\s\"',;}]+")
_QUERY_KEY_RE = re.compile(r"(?i)((?:api[-_]?key|key|token|access_token)=)[^&\s\"']+")
_URL_PASS_RE = re.compile(r"(//[^/\s:@]+:)[^@/\s]+@")


def redact(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` without the given secrets, Bearer/Basic credentials, key query values and
    URL passwords."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = _BEARER_RE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _QUERY_KEY_RE.sub(lambda m: m.group(1) + REDACTED, text)
    return _URL_PASS_RE.sub(lambda m: m.group(1) + REDACTED + "@", text)


def resolve_api_key(api_key: str | None = None) -> str | None:
    """The key to use: the argument, else ``ENERGYKERNEL_LLM_API_KEY``, else ``OPENAI_API_KEY``."""
    if api_key is None:
        for name in ENV_API_KEYS:
            if os.environ.get(name):
                api_key = os.environ[name]
                break
    if api_key is None or api_key == "":
        return None
    if not isinstance(api_key, str):
        raise TypeError(f"api_key must be a string, not {type(api_key).__name__}")
    if any(ch.isspace() or ord(ch) < 32 for ch in api_key):
        raise ValueError("api_key contains whitespace or control characters (value not shown)")
    return api_key


def public_url(base_url: str) -> str:
    """``base_url`` fit to be stored: scheme, host, port and path; no user, password, query."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def is_loopback(base_url: str) -> bool:
    """True if ``base_url`` points at this machine (localhost, 127.0.0.0/8, ::1)."""
    host = (urlsplit(base_url).hostname or "").lower()
    if host in ("localhost", "0.0.0.0") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash, or a ValueError naming what is wrong."""
    if not isinstance(base_url, str) or not base_url:
        raise ValueError("base_url must be a non-empty string such as http://localhost:11434/v1")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url {redact(base_url)!r}: expected http(s)://host[:port]/path")
    return base_url.rstrip("/")


class LLMError(Exception):
    """A request that failed; the message never contains the API key."""

    def __init__(self, message: str, *, status_code: int | None = None,
                 retryable: bool = False, attempts: int = 1, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        self.retryable = retryable
        self.attempts = attempts


@dataclass
class ChatResult:
    """One answer: text, token counts from ``usage`` (None if the service sent none), time to
    first token (streaming only), finish reason and how many attempts it took."""

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    ttft_s: float | None
    finish_reason: str | None
    attempts: int
    model: str | None = None


class ChatClient:
    """OpenAI-compatible Chat Completions over httpx: ``ChatClient(url).chat(messages, model=...)``.

    Args:
        base_url: e.g. ``http://localhost:11434/v1`` (requests go to ``{base_url}/chat/completions``).
        api_key: sent as ``Authorization: Bearer``; see :func:`resolve_api_key`.
        timeout_s: limit for each attempt (connect, each read, and a whole streamed answer).
        retries: extra attempts after a transient failure.
        backoff_s: wait before the first retry; doubled each time, at most ``max_backoff_s``
            (a numeric ``Retry-After`` from the server is honoured up to that cap).
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 60.0,
                 retries: int = 2, backoff_s: float = 0.5, max_backoff_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = check_base_url(base_url)
        if not timeout_s > 0:
            raise ValueError(f"timeout_s={timeout_s!r}: must be > 0 seconds")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries={retries!r}: must be an integer >= 0")
        if not backoff_s >= 0:
            raise ValueError(f"backoff_s={backoff_s!r}: must be >= 0 seconds")
        self.timeout_s, self.retries = float(timeout_s), retries
        self.backoff_s, self.max_backoff_s = float(backoff_s), float(max_backoff_s)
        key = resolve_api_key(api_key)
        self._secrets = tuple(s for s in (key, urlsplit(base_url).password) if s)
        headers = {"Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(self.timeout_s),
                                  follow_redirects=False, transport=transport,
                                  trust_env=not is_loopback(base_url))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets)

    def models(self) -> list[str]:
        """Model ids the service lists at ``/models``."""
        resp = self._send(lambda: self._http.get(f"{self.base_url}/models"))
        self._check_status(resp, resp.text)
        return [m.get("id", "") for m in self._parse_json(resp.text).get("data", [])]

    def chat(self, messages: list[dict[str, Any]], *, model: str, max_tokens: int | None = None,
             temperature: float | None = 0, stream: bool = True) -> ChatResult:
        """Send one conversation; retry transient failures. Raises :class:`LLMError`."""
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": bool(stream)}
        if max_tokens is not None:
            body["max_tokens"] = int(max_tokens)
        if temperature is not None:
            body["temperature"] = temperature
        if stream:
            body["stream_options"] = {"include_usage": True}
        attempt = 0
        while True:
            attempt += 1
            try:
                result = self._stream(body) if stream else self._once(body)
            except LLMError as exc:
                exc.attempts = attempt
                if exc.status_code == 400 and "stream_options" in body and \
                        "stream_options" in str(exc):
                    body.pop("stream_options")  # an older server: no usage chunk, then
                    attempt -= 1
                    continue
                if not exc.retryable or attempt > self.retries:
                    raise
                wait = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
                time.sleep(max(wait, min(exc.retry_after_s, self.max_backoff_s)))
                continue
            result.attempts = attempt
            return result

    # -- one attempt -----------------------------------------------------------------------
    def _send(self, fn):
        try:
            return fn()
        except httpx.TimeoutException as exc:
            raise LLMError(f"timed out after {self.timeout_s:g} s ({type(exc).__name__})",
                           retryable=True) from None
        except httpx.TransportError as exc:
            raise LLMError(self._clean(f"{type(exc).__name__}: {exc}"), retryable=True) from None

    def _check_status(self, resp: httpx.Response, body: str) -> None:
        if resp.status_code < 300:
            return
        if 300 <= resp.status_code < 400:
            raise LLMError(f"HTTP {resp.status_code} redirect from {public_url(self.base_url)} "
                           "not followed (the API key is sent only to base_url); "
                           "fix base_url", status_code=resp.status_code)
        detail = body.strip()
        with contextlib.suppress(ValueError, KeyError, TypeError):
            detail = json.loads(body)["error"]["message"]
        err = LLMError(self._clean(f"HTTP {resp.status_code} from {public_url(self.base_url)}: "
                                   f"{str(detail)[:300]}"),
                       status_code=resp.status_code,
                       retryable=resp.status_code in RETRY_STATUS)
        retry_after = resp.headers.get("Retry-After", "")
        err.retry_after_s = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else 0.0
        raise err

    def _parse_json(self, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            raise LLMError(self._clean(f"response is not JSON: {text[:80]!r}"),
                           retryable=True) from None

    def _once(self, body: dict) -> ChatResult:
        url = f"{self.base_url}/chat/completions"
        resp = self._send(lambda: self._http.post(url, json=body))
        self._check_status(resp, resp.text)
        data = self._parse_json(resp.text)
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise LLMError(self._clean(f"unexpected response shape: {resp.text[:120]!r}"),
                           retryable=False) from None
        usage = data.get("usage") or {}
        return ChatResult(self._clean(text), _int(usage.get("prompt_tokens")),
                          _int(usage.get("completion_tokens")), None,
                          choice.get("finish_reason"), 1, data.get("model"))

    def _stream(self, body: dict) -> ChatResult:
        url = f"{self.base_url}/chat/completions"
        t0 = time.perf_counter()
        parts: list[str] = []
        ttft = finish = model = None
        usage: dict = {}
        done = False
        try:
            with self._http.stream("POST", url, json=body) as resp:
                if resp.status_code >= 300:
                    self._check_status(resp, resp.read().decode("utf-8", "replace"))
                for line in resp.iter_lines():
                    if time.perf_counter() - t0 > self.timeout_s:
                        raise LLMError(f"timed out after {self.timeout_s:g} s (answer not "
                                       "finished)", retryable=True)
                    if not line.startswith("data:"):
                        continue  # blank separators, comments, "event:" lines
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        done = True
                        break
                    event = self._parse_json(payload)
                    if not isinstance(event, dict):
                        raise LLMError("stream event is not a JSON object", retryable=True)
                    if "error" in event:
                        raise LLMError(self._clean(f"error event in stream: "
                                                   f"{str(event['error'])[:300]}"),
                                       retryable=False)
                    model = event.get("model", model)
                    usage = event.get("usage") or usage
                    for choice in event.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            if ttft is None:
                                ttft = time.perf_counter() - t0
                            parts.append(piece)
                        finish = choice.get("finish_reason") or finish
        except httpx.TimeoutException as exc:
            raise LLMError(f"timed out after {self.timeout_s:g} s ({type(exc).__name__})",
                           retryable=True) from None
        except httpx.TransportError as exc:
            raise LLMError(self._clean(f"{type(exc).__name__}: {exc}"), retryable=True) from None
        if not done and finish is None:
            raise LLMError("stream ended before the answer was complete", retryable=True)
        return ChatResult(self._clean("".join(parts)), _int(usage.get("prompt_tokens")),
                          _int(usage.get("completion_tokens")), ttft, finish, 1, model)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
