"""A small client for OpenAI-compatible Chat Completions (Ollama, llama.cpp, vLLM, hosted).

Streaming (server-sent events, time to first token measured) and non-streaming, a
deadline per attempt (``timeout_s`` covers connecting, the headers and the whole body), a
cap on the size of an answer (``max_response_bytes``), and retries with exponential backoff
for transient failures (connection errors, timeouts, a connection closed mid-answer, HTTP
408/409/429/5xx, a body that is not JSON). Client errors (400, 401, 404, …), an answer over
the size cap and fields of the wrong type are not retried.

What the service sends is checked, not trusted: ``finish_reason`` must be a scalar, token
counts integers in 0…2**53 (else they count as unknown, with a note), text is decoded with
bad bytes, lone surrogates and NULs replaced by U+FFFD.

Secrets: the API key is sent only as ``Authorization: Bearer …`` to ``base_url`` (redirects
are not followed, and environment proxies are ignored for loopback URLs). Every result and
error message this module produces passes through :func:`redact` with every form of this
client's credentials (:func:`secret_forms`): the key, the URL password, the Basic token.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import math
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from ._deadline import deadline, deadline_transport, passed, time_left

ENV_API_KEYS = ("ENERGYKERNEL_LLM_API_KEY", "OPENAI_API_KEY")
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
REDACTED = "[REDACTED]"
DEFAULT_MAX_RESPONSE_BYTES = 16 * 2**20
MAX_COUNT = 2**53  # token counts above this are not counts (and would not fit a float)
ERROR_BODY_BYTES = 65536  # of an error response, this much is read for its message
_BEARER_RE = re.compile(r"(?i)((?:bearer|basic)\s+)[^\s\"',;}]+")
_QUERY_KEY_RE = re.compile(r"(?i)((?:api[-_]?key|key|token|access_token)=)[^&\s\"']+")
_URL_PASS_RE = re.compile(r"(//[^/\s:@]+:)[^@/\s]+@")
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")  # NUL, lone surrogates (pairs are joined)
_LINE_END_RE = re.compile(rb"\r\n|\r|\n")
_SECONDS_RE = re.compile(r"[0-9]{1,9}(\.[0-9]*)?")  # Retry-After in seconds (not a date)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the given secrets, Bearer/Basic credentials, key query values and
    URL passwords."""
    for secret in sorted(secrets, key=len, reverse=True):  # a longer form first
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = _BEARER_RE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _QUERY_KEY_RE.sub(lambda m: m.group(1) + REDACTED, text)
    return _URL_PASS_RE.sub(lambda m: m.group(1) + REDACTED + "@", text)


def clean_text(text: str) -> str:
    """``text`` fit for NetCDF and UTF-8 files: NULs and lone surrogates become U+FFFD."""
    return _UNSTORABLE_RE.sub("\ufffd", text)


def secret_forms(base_url: str, api_key: str | None) -> tuple[str, ...]:
    """Every form in which these credentials travel: the key; the URL password as written
    and percent-decoded (or the user name, where it is the only credential); and the
    base64 token of ``Authorization: Basic``."""
    parts = urlsplit(base_url)
    forms = [api_key or ""]
    if parts.username is not None or parts.password is not None:
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        forms += [parts.password or "", password] if parts.password else [user]
        forms.append(base64.b64encode(f"{user}:{password}".encode()).decode())
    return tuple(dict.fromkeys(f for f in forms if f))


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
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(f"base_url {redact(base_url)!r}: the port is not a number") from None
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
    """One answer: text, token counts from ``usage`` (None if the service sent none or
    none usable), time to first token (streaming only), finish reason, how many attempts it
    took, and notes on what the service sent that could not be used."""

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    ttft_s: float | None
    finish_reason: str | None
    attempts: int
    model: str | None = None
    notes: tuple[str, ...] = ()


def _lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Lines (ended by CR, LF or CRLF) of a byte stream, as UTF-8 (bad bytes → U+FFFD)."""
    pending = b""
    for chunk in chunks:
        *ended, rest = _LINE_END_RE.split(chunk)
        if ended:
            ended[0] = pending + ended[0]
            pending = b""
            yield from (line.decode("utf-8", "replace") for line in ended)
        pending += rest
    if pending:
        yield pending.decode("utf-8", "replace")


def _count(usage: dict[str, Any], name: str, notes: list[str]) -> int | None:
    """``usage[name]`` if it is a count (an integer in 0…2**53), else None with a note."""
    value = usage.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        return value
    notes.append(f"usage.{name} is not a count (an integer in 0..2**53), token counts "
                 f"approximated: {value!r}")  # (cut to length after redaction)
    return None


def _finish_reason(value: Any) -> str | None:
    """``finish_reason`` as a string (a number or boolean converted), else an LLMError."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and math.isfinite(value):
        return str(value)
    raise LLMError(f"finish_reason: expected a string, got {type(value).__name__}",
                   retryable=False)


def _piece(holder: Any, name: str) -> str | None:
    """The text ``holder[name]`` (a message or delta): str, None, or an LLMError."""
    if holder is None:
        return None
    if not isinstance(holder, dict):
        raise LLMError(f"unexpected response shape: a message or delta is "
                       f"{type(holder).__name__}, not an object", retryable=False)
    value = holder.get(name)
    if value is None or isinstance(value, str):
        return value
    raise LLMError(f"{name}: expected a string, got {type(value).__name__}", retryable=False)


class ChatClient:
    """OpenAI-compatible Chat Completions over httpx: ``ChatClient(url).chat(messages, model=...)``.

    Args:
        base_url: e.g. ``http://localhost:11434/v1`` (requests go to ``{base_url}/chat/completions``).
        api_key: sent as ``Authorization: Bearer``; see :func:`resolve_api_key`.
        timeout_s: deadline of each attempt: connecting, sending, the headers and the whole
            body (streamed or not) must all be done by then.
        retries: extra attempts after a transient failure.
        backoff_s: wait before the first retry; doubled each time, at most ``max_backoff_s``
            (a numeric ``Retry-After`` from the server is honoured up to that cap).
        max_response_bytes: largest answer body read (decoded bytes; default 16 MiB); a
            larger one is not read further and fails, not retried.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 60.0,
                 retries: int = 2, backoff_s: float = 0.5, max_backoff_s: float = 30.0,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = check_base_url(base_url)
        if not (isinstance(timeout_s, (int, float)) and 0 < timeout_s < math.inf):
            raise ValueError(f"timeout_s={timeout_s!r}: must be a finite number > 0 seconds")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries={retries!r}: must be an integer >= 0")
        if not backoff_s >= 0:
            raise ValueError(f"backoff_s={backoff_s!r}: must be >= 0 seconds")
        if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int) \
                or max_response_bytes < 1:
            raise ValueError(f"max_response_bytes={max_response_bytes!r}: must be a positive "
                             "integer (bytes), e.g. 16 * 2**20")
        self.timeout_s, self.retries = float(timeout_s), retries
        self.backoff_s, self.max_backoff_s = float(backoff_s), float(max_backoff_s)
        self.max_response_bytes = max_response_bytes
        key = resolve_api_key(api_key)
        self._secrets = secret_forms(base_url, key)
        headers = {"Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        trust_env = not is_loopback(base_url)
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(self.timeout_s),
                                  follow_redirects=False, trust_env=trust_env,
                                  transport=transport or deadline_transport(trust_env))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def clean(self, text: str) -> str:
        """``text`` fit to store or show: this client's secrets in every form redacted,
        NULs and lone surrogates replaced (see :func:`redact`, :func:`clean_text`)."""
        return redact(clean_text(text), self._secrets)

    def _excerpt(self, text: str, n_chars: int) -> str:
        return repr(self.clean(text)[:n_chars])  # redacted before it is cut: no half keys

    def models(self) -> list[str]:
        """Model ids the service lists at ``/models``."""
        with self._attempt(), self._http.stream("GET", f"{self.base_url}/models",
                                                timeout=self._timeout()) as resp:
            data = self._json_body(resp)
        listed = data.get("data") if isinstance(data, dict) else None
        return [self.clean(str(m.get("id", ""))) for m in listed or []
                if isinstance(m, dict)] if isinstance(listed, list) else []

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
                result = self._chat_once(body, bool(stream))
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
    @contextlib.contextmanager
    def _attempt(self) -> Iterator[None]:
        """One request under a deadline of ``timeout_s``; httpx errors become LLMError."""
        try:
            with deadline(self.timeout_s):
                yield
        except httpx.TimeoutException as exc:
            raise self._timed_out(type(exc).__name__) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise LLMError(self.clean(f"{type(exc).__name__}: {exc}"), retryable=isinstance(
                exc, (httpx.TransportError, httpx.DecodingError))) from None

    def _timed_out(self, detail: str) -> LLMError:
        return LLMError(f"timed out after {self.timeout_s:g} s (timeout_s={self.timeout_s:g} "
                        f"covers connecting, headers and the whole body; {detail})",
                        retryable=True)

    def _timeout(self) -> httpx.Timeout:
        """httpx's limits for a request now: the time left before the deadline."""
        return httpx.Timeout(time_left(self.timeout_s, httpx.TimeoutException))

    def _chunks(self, resp: httpx.Response, *, keep_bytes: int | None = None
                ) -> Iterator[bytes]:
        """The body as it arrives, each chunk checked against the deadline and against
        ``max_response_bytes`` (LLMError past either); with ``keep_bytes``, its first
        ``keep_bytes`` bytes, the rest unread."""
        cap = self.max_response_bytes if keep_bytes is None else keep_bytes
        declared = resp.headers.get("Content-Length", "").strip()
        if keep_bytes is None and declared.isdigit() and int(declared) > cap:
            raise self._too_large(f"Content-Length is {declared}")
        total = 0
        for chunk in resp.iter_bytes():
            if passed():
                raise self._timed_out("answer not finished")
            total += len(chunk)
            if total > cap:
                if keep_bytes is None:
                    raise self._too_large(f"more than {total - len(chunk)} bytes arrived")
                yield chunk[:len(chunk) - (total - cap)]
                return
            yield chunk

    def _too_large(self, detail: str) -> LLMError:
        return LLMError(f"response larger than max_response_bytes={self.max_response_bytes} "
                        f"({detail}); not read further", retryable=False)

    def _check_status(self, resp: httpx.Response) -> None:
        if resp.status_code < 300:
            return
        if 300 <= resp.status_code < 400:
            raise LLMError(f"HTTP {resp.status_code} redirect from {public_url(self.base_url)} "
                           "not followed (the API key is sent only to base_url); "
                           "fix base_url", status_code=resp.status_code)
        body = b"".join(self._chunks(resp, keep_bytes=ERROR_BODY_BYTES)).decode("utf-8",
                                                                                "replace")
        detail: Any = body.strip()
        with contextlib.suppress(ValueError, KeyError, TypeError, RecursionError):
            detail = json.loads(body)["error"]["message"]
        err = LLMError(f"HTTP {resp.status_code} from {public_url(self.base_url)}: "
                       f"{self.clean(str(detail))[:300]}", status_code=resp.status_code,
                       retryable=resp.status_code in RETRY_STATUS)
        retry_after = resp.headers.get("Retry-After", "").strip()
        if _SECONDS_RE.fullmatch(retry_after):
            err.retry_after_s = float(retry_after)
        raise err

    def _parse_json(self, text: str) -> Any:
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            raise LLMError(f"response is not JSON: {self._excerpt(text, 80)}",
                           retryable=True) from None

    def _json_body(self, resp: httpx.Response) -> Any:
        self._check_status(resp)
        return self._parse_json(b"".join(self._chunks(resp)).decode("utf-8", "replace"))

    def _chat_once(self, body: dict, stream: bool) -> ChatResult:
        url = f"{self.base_url}/chat/completions"
        t0 = time.perf_counter()
        with self._attempt(), self._http.stream("POST", url, json=body,
                                                timeout=self._timeout()) as resp:
            if stream:
                self._check_status(resp)
                return self._read_events(_lines(self._chunks(resp)), t0)
            data = self._json_body(resp)
        try:
            choice = data["choices"][0]
            text = _piece(choice["message"], "content") or ""
            usage, model = data.get("usage"), data.get("model")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise LLMError(f"unexpected response shape: {self._excerpt(json.dumps(data), 120)}",
                           retryable=False) from None
        return self._result(text, usage, choice.get("finish_reason"), model, None)

    def _read_events(self, lines: Iterable[str], t0: float) -> ChatResult:
        """A streamed answer from its server-sent event lines."""
        parts: list[str] = []
        ttft = finish = model = None
        usage: Any = None
        for line in lines:
            if not line.startswith("data:"):
                continue  # blank separators, comments, "event:" lines
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            event = self._parse_json(payload)
            if not isinstance(event, dict):
                raise LLMError("stream event is not a JSON object", retryable=True)
            if "error" in event:
                raise LLMError(f"error event in stream: {self.clean(str(event['error']))[:300]}",
                               retryable=False)
            model = event.get("model", model)
            usage = event.get("usage") or usage
            choices = event.get("choices") or []
            if not isinstance(choices, list):
                raise LLMError("unexpected response shape: 'choices' is not a list",
                               retryable=False)
            for choice in choices:
                if not isinstance(choice, dict):
                    raise LLMError("unexpected response shape: a choice is not an object",
                                   retryable=False)
                piece = _piece(choice.get("delta"), "content")
                if piece:
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    parts.append(piece)
                finish = _finish_reason(choice.get("finish_reason")) or finish
        else:
            if finish is None:
                raise LLMError("stream ended before the answer was complete", retryable=True)
        return self._result("".join(parts), usage, finish, model, ttft)

    def _result(self, text: str, usage: Any, finish: Any, model: Any,
                ttft_s: float | None) -> ChatResult:
        """The answer as stored: checked types, secrets redacted, text cleaned."""
        notes: list[str] = []
        if usage is not None and not isinstance(usage, dict):
            notes.append(f"usage is {type(usage).__name__}, not an object: token counts "
                         "approximated")
        usage = usage if isinstance(usage, dict) else {}
        prompt_tokens = _count(usage, "prompt_tokens", notes)
        completion_tokens = _count(usage, "completion_tokens", notes)
        finish = _finish_reason(finish)
        return ChatResult(self.clean(text), prompt_tokens, completion_tokens, ttft_s,
                          None if finish is None else self.clean(finish)[:100], 1,
                          self.clean(model)[:200] if isinstance(model, str) else None,
                          tuple(self.clean(n)[:200] for n in notes))
