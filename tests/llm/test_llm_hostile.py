"""Hostile services over real HTTP on 127.0.0.1: slow, huge, malformed or key-echoing
answers cost one prompt an ``error`` row, never the campaign, the deadline or a secret."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

import energykernel as ek
from energykernel.llm import ChatClient, LLMError, load_prompts, measure_prompts, save_prompts

pytestmark = pytest.mark.usefixtures("estimate_only")

Answer = Callable[["_Handler", dict[str, Any]], None]
CHUNK = b"x" * 65536


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.server.auth.append(self.headers.get("Authorization"))
        last = req["messages"][-1]["content"]
        answer = self.server.answers.get(last, ok)
        self.close_connection = True
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            answer(self, req)  # (the client hangs up at a deadline or a size cap)

    def raw(self, data: bytes) -> None:
        """Write ``data`` and count it."""
        self.wfile.write(data)
        self.server.sent_bytes += len(data)

    def head(self, status: int = 200, ctype: str = "application/json",
             length: int | None = None) -> None:
        extra = f"Content-Length: {length}\r\n" if length is not None else ""
        self.raw(f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nConnection: close\r\n"
                 f"{extra}\r\n".encode())

    def drip(self, data: bytes, interval_s: float = 0.5) -> None:
        """One byte every ``interval_s`` (at most ``len(data)`` bytes; stops with the server)."""
        for j in range(len(data)):
            if self.server.stopping.is_set():
                return
            self.raw(data[j:j + 1])
            time.sleep(interval_s)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answers: dict[str, Answer]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers, self.auth, self.sent_bytes = answers, [], 0
        self.stopping = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class Hostile:
    """A service on 127.0.0.1 that answers each prompt (last message text) its own way;
    prompts not in ``answers`` get a plain good answer."""

    def __init__(self, answers: dict[str, Answer] | None = None) -> None:
        self.srv = _Server(answers or {})
        self._thread = threading.Thread(target=self.srv.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.srv.server_address[1]}/v1"

    def __enter__(self) -> Hostile:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.srv.stopping.set()
        self.srv.shutdown()
        self.srv.server_close()
        self._thread.join(5)


def body_of(req: dict, content: Any = "fine", *, finish: Any = "stop", usage: Any = None,
            model: Any = "m") -> bytes:
    """A complete answer in the form the request asked for (SSE or one JSON object)."""
    usage = {"prompt_tokens": 3, "completion_tokens": 1} if usage is None else usage
    if not req.get("stream"):
        return json.dumps({"model": model, "usage": usage, "choices": [
            {"message": {"content": content}, "finish_reason": finish}]}).encode()
    events = [{"model": model, "choices": [{"delta": {"content": content},
                                            "finish_reason": None}]},
              {"model": model, "choices": [{"delta": {}, "finish_reason": finish}]},
              {"choices": [], "usage": usage}]
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + \
        b"data: [DONE]\n\n"


def ok(h: _Handler, req: dict) -> None:
    data = body_of(req)
    h.head(ctype="text/event-stream" if req.get("stream") else "application/json",
           length=len(data))
    h.raw(data)


def answering(make: Callable[[dict], bytes], status: int = 200) -> Answer:
    def answer(h: _Handler, req: dict) -> None:
        data = make(req)
        h.head(status, length=len(data))
        h.raw(data)
    return answer


def statuses(ds) -> list[str]:
    return [str(s) for s in ds.status.values]


# -- 1. the deadline: timeout_s covers the whole request -------------------------------------

def drip_body(h: _Handler, req: dict) -> None:
    """Headers at once, then a body (an SSE line without newline, or JSON) byte by byte."""
    h.head(ctype="text/event-stream" if req.get("stream") else "application/json")
    prefix = b'data: {"choices": [{"delta": {"content": "' if req.get("stream") else \
        b'{"choices": [{"message": {"content": "'
    h.drip(prefix + b"x" * 40)


def drip_headers(h: _Handler, req: dict) -> None:
    h.raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Pad: ")
    h.drip(b"a" * 40)


@pytest.mark.parametrize("stream", [True, False])
def test_a_dripping_body_runs_into_the_deadline(stream):
    with Hostile({"drip": drip_body}) as srv:
        t0 = time.perf_counter()
        ds = measure_prompts(["drip", "after"], base_url=srv.base_url, model="m",
                             stream=stream, timeout_s=2, retries=0, progress=False)
        elapsed = time.perf_counter() - t0
    assert statuses(ds) == ["error", "ok"]  # the campaign goes on
    err = str(ds.error.values[0])
    assert "timed out" in err and "timeout_s=2" in err
    assert float(ds.duration.values[0]) < 2.8 and elapsed < 4.5


def test_dripping_headers_run_into_the_deadline():
    with Hostile({"drip": drip_headers}) as srv, ChatClient(srv.base_url, timeout_s=1,
                                                          retries=0) as client:
        t0 = time.perf_counter()
        with pytest.raises(LLMError, match=r"timed out.*timeout_s=1"):
            client.chat([{"role": "user", "content": "drip"}], model="m", stream=False)
    assert time.perf_counter() - t0 < 1.8


def test_each_retry_gets_its_own_deadline():
    with Hostile({"drip": drip_body}) as srv, ChatClient(srv.base_url, timeout_s=0.6,
                                                          retries=1, backoff_s=0) as client:
        t0 = time.perf_counter()
        with pytest.raises(LLMError, match="timed out") as info:
            client.chat([{"role": "user", "content": "drip"}], model="m")
    assert info.value.attempts == 2 and time.perf_counter() - t0 < 2.2


# -- 2. the size cap ---------------------------------------------------------------------------

def huge(total_bytes: int, *, declare: bool) -> Answer:
    """A valid answer of ``total_bytes`` (SSE events or one JSON object), sent fast."""
    def answer(h: _Handler, req: dict) -> None:
        stream = bool(req.get("stream"))
        if stream:
            event = b'data: {"choices": [{"delta": {"content": "' + CHUNK + b'"}}]}\n\n'
            head, tail = b"", b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\n'
        else:
            event = CHUNK
            head = b'{"choices": [{"message": {"content": "'
            tail = b'"}, "finish_reason": "stop"}]}'
        n = total_bytes // len(event)
        h.head(ctype="text/event-stream" if stream else "application/json",
               length=len(head) + n * len(event) + len(tail) if declare else None)
        h.raw(head)
        for _ in range(n):
            h.raw(event)
        h.raw(tail)
    return answer


@pytest.mark.parametrize("stream,declare", [(True, False), (False, False), (False, True)])
def test_a_huge_answer_stops_at_max_response_bytes(stream, declare):
    total = 32 * 2**20
    with Hostile({"huge": huge(total, declare=declare)}) as srv:
        ds = measure_prompts(["huge", "after"], base_url=srv.base_url, model="m",
                             stream=stream, retries=0, max_response_bytes=65536,
                             progress=False)
        time.sleep(0.05)
        sent = srv.srv.sent_bytes
    assert statuses(ds) == ["error", "ok"]
    assert "max_response_bytes=65536" in str(ds.error.values[0])
    assert ds.response_text.values[0] == ""
    assert sent < total  # the client hung up instead of reading everything


@pytest.mark.parametrize("bad", [0, -1, 1.5, "16M", True, None])
def test_max_response_bytes_is_validated(bad):
    with pytest.raises(ValueError, match="max_response_bytes"):
        ChatClient("http://127.0.0.1:9/v1", max_response_bytes=bad)
    with pytest.raises(ValueError, match="max_response_bytes"):
        measure_prompts(["x"], base_url="http://127.0.0.1:9/v1", model="m",
                        max_response_bytes=bad, progress=False)


# -- 3. odd field values ----------------------------------------------------------------------

def raw_utf8(req: dict) -> bytes:
    return body_of(req, "PLACEHOLDER").replace(b"PLACEHOLDER", b"bad \xff\xfe bytes")


ODD: dict[str, Answer] = {
    "finish-dict": answering(lambda r: body_of(r, finish={"reason": "stop"})),
    "finish-list": answering(lambda r: body_of(r, finish=["stop"])),
    "finish-number": answering(lambda r: body_of(r, finish=3)),
    "tokens-huge": answering(lambda r: body_of(r, usage={"prompt_tokens": 10**30,
                                                         "completion_tokens": 2})),
    "tokens-negative": answering(lambda r: body_of(r, usage={"prompt_tokens": -4,
                                                             "completion_tokens": 2})),
    "tokens-string": answering(lambda r: body_of(r, usage={"prompt_tokens": "12",
                                                           "completion_tokens": True})),
    "usage-list": answering(lambda r: body_of(r, usage=[1, 2])),
    "surrogate": answering(lambda r: body_of(r, "half \ud800 a pair \udfff")),
    "raw-bytes": answering(raw_utf8),
    "content-number": answering(lambda r: body_of(r, 42)),
    "model-dict": answering(lambda r: body_of(r, model={"id": 1})),
    "nul": answering(lambda r: body_of(r, "a\x00b")),
}


@pytest.mark.parametrize("stream", [True, False])
def test_odd_fields_cost_one_prompt_at_most(stream, tmp_path, log_dir):
    prompts = [*ODD, "normal"]
    with Hostile(ODD) as srv:
        ds = measure_prompts(prompts, base_url=srv.base_url, model="m", stream=stream,
                             retries=0, progress=False)
    row = {p: j for j, p in enumerate(prompts)}
    status = dict(zip(prompts, statuses(ds), strict=True))
    for name in ("finish-dict", "finish-list", "content-number"):
        assert status[name] == "error", name
    assert "finish_reason" in str(ds.error.values[row["finish-dict"]])
    assert "content" in str(ds.error.values[row["content-number"]])
    assert ds.finish_reason.values[row["finish-number"]] == "3"
    for name in ("tokens-huge", "tokens-negative", "tokens-string", "usage-list"):
        j = row[name]
        assert status[name] == "ok" and ds.token_source.values[j] == "approx", name
        assert "prompt_tokens" in str(ds.notes.values[j]) or name == "usage-list"
    assert "\ufffd" in ds.response_text.values[row["surrogate"]]
    assert "\ufffd" in ds.response_text.values[row["raw-bytes"]]
    assert status["model-dict"] == status["normal"] == status["nul"] == "ok"
    path = save_prompts(ds, tmp_path / "odd.nc")
    back = load_prompts(path)
    assert list(back.response_text.values) == list(ds.response_text.values)
    assert back.response_text.values[row["nul"]] == "a\ufffdb"
    assert load_prompts(log_dir).sizes["prompt"] == len(prompts)  # the campaign log too


def test_an_odd_retry_after_header_is_ignored():
    def busy(h: _Handler, req: dict) -> None:
        h.raw(b"HTTP/1.1 503 Busy\r\nRetry-After: \xc2\xb2\r\nContent-Length: 0\r\n\r\n")

    with Hostile({"busy": busy}) as srv, ChatClient(srv.base_url, retries=0) as client, \
            pytest.raises(LLMError, match="503") as info:
        client.chat([{"role": "user", "content": "busy"}], model="m", stream=False)
    assert info.value.retry_after_s == 0.0


# -- 4. secrets echoed by the service --------------------------------------------------------

KEY = "sk-hostile-5d1e0c9a7b3f42e8"
USER, PASSWORD = "alice", "pw-hostile-8c2f1e@7a"  # '@' travels percent-encoded in the URL
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def echoed(h: _Handler) -> str:
    auth = h.headers.get("Authorization") or ""
    token = auth.split(" ", 1)[-1]
    plain = base64.b64decode(token).decode() if auth.startswith("Basic") else ""
    return f"{auth} | {token} | {plain} | {plain.partition(':')[2]}"


def echo_in(where: str) -> Answer:
    def answer(h: _Handler, req: dict) -> None:
        text = echoed(h)
        if where == "status":
            data = json.dumps({"error": {"message": f"bad credentials {text}"}}).encode()
            h.head(401, length=len(data))
        elif where == "stream-error" and req.get("stream"):
            data = b"data: " + json.dumps({"error": {"message": text}}).encode() + b"\n\n"
            h.head(200, "text/event-stream", len(data))
        elif where == "stream-error":
            data = json.dumps({"error": {"message": text}}).encode()
            h.head(200, length=len(data))
        elif where == "usage":
            data = body_of(req, usage={"prompt_tokens": text, "completion_tokens": 1})
            h.head(200, "text/event-stream" if req.get("stream") else "application/json",
                   len(data))
        elif where == "garbage":
            data = f"<html>{text}</html>".encode()
            h.head(200, length=len(data))
        else:
            data = body_of(req, **{where: text})
            h.head(200, "text/event-stream" if req.get("stream") else "application/json",
                   len(data))
        h.raw(data)
    return answer


ECHO = {f"echo-{w}": echo_in(w) for w in ("content", "finish", "model", "status",
                                          "stream-error", "garbage", "usage")}


def assert_clean(data: bytes | str, where: str) -> None:
    blob = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    for secret in (KEY, PASSWORD, "pw-hostile-8c2f1e%407a", BASIC):
        assert secret.encode() not in blob, f"{secret!r} found in {where}"


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("cred", ["key", "url"])
def test_echoed_secrets_are_never_stored_or_raised(cred, stream, tmp_path, log_dir):
    with Hostile(ECHO) as srv:
        if cred == "key":
            base, key = srv.base_url, KEY
        else:
            base, key = srv.base_url.replace("//", f"//{USER}:pw-hostile-8c2f1e%407a@"), None
        ds = measure_prompts([*ECHO, "normal"], base_url=base, model="m", api_key=key,
                             stream=stream, retries=0, progress=False,
                             task_type=KEY if key else PASSWORD)
        sent = srv.srv.auth[0]
        messages = []
        with ChatClient(base, api_key=key, retries=0) as client:
            for prompt in ECHO:
                try:
                    r = client.chat([{"role": "user", "content": prompt}], model="m",
                                    stream=stream)
                    messages.append(repr(r))
                except LLMError as exc:
                    messages.append(str(exc) + repr(exc.args))
        port = f":{srv.srv.server_address[1]}/"
        for bad in (base.replace("http", "ftp", 1), base.replace(port, ":0x/")):
            with pytest.raises(ValueError) as info:  # a bad base_url is named, not shown
                measure_prompts(["x"], base_url=bad, model="m", progress=False)
            messages.append(str(info.value))
    assert sent == (f"Bearer {KEY}" if key else f"Basic {BASIC}")  # it did reach the service
    assert statuses(ds)[-1] == "ok" and "[REDACTED]" in str(ds.response_text.values[0])
    assert set(ds.task_type.values) == {"[REDACTED]"}
    save_prompts(ds, tmp_path / "echo.nc")
    written = [p for p in [*tmp_path.rglob("*"), *log_dir.rglob("*")] if p.is_file()]
    assert {p.suffix for p in written} >= {".nc", ".jsonl"}
    assert any(p.name.startswith("llm-") for p in written)
    for path in written:
        assert_clean(path.read_bytes(), str(path))
    assert_clean(repr(ds.to_dict()), "the dataset")
    assert_clean(repr(ek.runs().to_dict()), "ek.runs()")
    assert_clean("\n".join(messages), "results and exception messages")


# -- 5. a damaged campaign log ----------------------------------------------------------------

def test_damaged_campaign_log_lines_are_skipped_with_a_warning(tmp_path, log_dir):
    with Hostile() as srv:
        ds = measure_prompts(["a", "b", "c"], base_url=srv.base_url, model="m",
                             progress=False)
        (log,) = log_dir.glob("llm-*.jsonl")
        lines = log.read_bytes().splitlines(keepends=True)
        good = json.loads(lines[1])
        bad = [b"\xff\xfe not utf-8 \x80\n", b'{"kind": "llm_prompt", "prompt_key": \n',
               b"[1, 2, 3]\n", b'"just a string"\n', b'{"no": "kind"}\n',
               json.dumps({**good, "prompt_tokens": "many"}).encode() + b"\n",
               json.dumps({**good, "energy_j": [1, 2]}).encode() + b"\n",
               json.dumps({**good, "energy_j": {"cpu": "hot"}}).encode() + b"\n",
               json.dumps({**good, "status": 5}).encode() + b"\n",
               json.dumps({k: v for k, v in good.items() if k != "prompt_key"}).encode()
               + b"\n", json.dumps({**good, "start_s": 1e300}).encode() + b"\n",
               json.dumps({**good, "prompt_tokens": 10**30}).encode() + b"\n"]
        damaged = tmp_path / "llm-damaged.jsonl"
        damaged.write_bytes(lines[0] + lines[1] + b"".join(bad) + b"".join(lines[2:])
                            + b'{"kind": "llm_pro')
        with pytest.warns(RuntimeWarning) as caught:
            back = load_prompts(damaged)
        assert list(back.prompt_key.values) == list(ds.prompt_key.values)
        assert list(back.response_text.values) == list(ds.response_text.values)
        notes = [str(w.message) for w in caught]
        for number in range(3, 3 + len(bad)):
            assert any(f"{damaged}:{number}:" in n for n in notes), (number, notes)
        assert any(f"{damaged}:{4 + len(bad) + 1}:" in n for n in notes)  # the cut last line
        with pytest.warns(RuntimeWarning, match="llm-damaged.jsonl"):
            again = measure_prompts(["a", "b", "c", "d"], base_url=srv.base_url, model="m",
                                    resume=damaged, progress=False)
    assert list(again.resumed.values) == [True, True, True, False]
    np.testing.assert_allclose(again.energy.values[:3], ds.energy.values)
