"""A tiny OpenAI-compatible Chat Completions server for demos and tests (loopback only).

    python -m energykernel.llm.demo_server --port 8011      # then base_url=http://127.0.0.1:8011/v1

It is not a language model: a word trigram chain trained on the short text below picks each
next word, after scoring the whole vocabulary against a context vector in pure Python. That
scoring is real CPU work done once per generated token (and, more lightly, per prompt
token), so the energy of a request really grows with the length of its answer. Answer length
follows the instruction in the last user message, as a real assistant's roughly would:
"classify …" / "in one word" → a few words, "summarize …" → about a third of the prompt,
"translate …" / "rewrite …" → about the prompt's length, "write …" / "explain …" → 150–240
words, anything else → 50–90. ``max_tokens`` caps it (``finish_reason="length"``).
With ``temperature=0`` answers are deterministic.

Endpoints: ``POST /v1/chat/completions`` (``stream`` true or false, ``usage`` counted in
words and punctuation marks; with ``stream_options.include_usage`` a final usage chunk),
``GET /v1/models``, ``GET /health``. Models: ``demo-ngram`` and ``demo-ngram-large`` (three
times the work per token).

Faults for tests, as a model suffix (``demo-ngram@500``), an ``X-Demo-Fault`` header or a
``[demo-fault: …]`` marker in the last message (one prompt of a campaign), comma-separated: ``500`` (server error), ``garbage`` (200 with a body that is not JSON),
``cut`` (connection closed mid-body / mid-stream), ``delay=S`` (sleep S s before answering),
``stall=S`` (stream a few words, then sleep S s), ``flaky=N`` (the first N requests for a
prompt get 503), ``nousage`` (no ``usage``), ``echoauth`` (401 whose body repeats the
Authorization header, as careless services do).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"
MODELS = {"demo-ngram": 4, "demo-ngram-large": 12}  # model -> scoring passes per token
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_FAULT_RE = re.compile(r"\[demo-fault:\s*([^\]]+)\]")

CORPUS = """
Every computation leaves a trace of heat. A processor that answers a question draws power
from the wall, and the power turns into warmth in the room. When we measure that energy we
learn what a question really costs. A short answer needs little work, while a long story
needs much more work, because every new word is chosen after the model weighs all the words
it knows. The same is true for large models running in a data centre, where thousands of
chips share the load and the cooling system carries the heat away. Engineers count joules
with hardware counters that the chip keeps for itself; the counters rise as the cores work
and the memory moves data. A careful study starts the counter, sends the prompt, waits for
the reply, stops the counter and writes down the prompt, the reply, the time and the energy.
With many such records one can ask which kind of task is expensive, whether the length of a
prompt predicts the cost, and which model or service gives the same quality for less power.
Summaries are often cheap, since the answer is shorter than the question. Translations cost
about as much as the text they carry. Essays, stories and explanations are the most costly,
because the model keeps writing for a long time. The grid that feeds the machine matters
too: the same joule may come from wind, from water or from coal, and the carbon it carries
changes with the hour and the place. Good measurement is honest about what it can see: a
counter on the client only sees the client, while the server far away spends its own power
out of sight. So we label every number with the way it was obtained, we keep every record on
disk as soon as it is finished, and we never lose a result when a request fails. The weather
outside the window changes, the river keeps running, and the small server on this machine
keeps choosing words, one after another, until the answer is long enough.
"""

_LENGTH_RULES: list[tuple[tuple[str, ...], Any]] = [
    (("one word", "classify", "sentiment", "yes or no", "true or false", "label"),
     lambda p, r: r.randint(2, 6)),
    (("summarize", "summarise", "summary", "tl;dr", "headline"),
     lambda p, r: max(12, min(60, p // 3)) + r.randint(0, 6)),
    (("translate", "rewrite", "paraphrase", "correct the"),
     lambda p, r: max(8, p) + r.randint(0, 8)),
    (("write", "story", "essay", "explain", "describe", "poem", "list"),
     lambda p, r: r.randint(150, 240)),
]


def tokenize(text: str) -> list[str]:
    """Words and punctuation marks: the server's unit of 'token' (and of ``usage``)."""
    return _TOKEN_RE.findall(text)


def _embedding(word: str, dim: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
    rng = random.Random(seed)
    return [rng.gauss(0.0, 1.0) for _ in range(dim)]


class NGramModel:
    """Word trigram chain with a vocabulary-wide scoring pass per generated word."""

    def __init__(self, text: str = CORPUS, dim: int = 16) -> None:
        words = [w.lower() for w in tokenize(text)]
        self.vocab = sorted(set(words))
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.emb = [_embedding(w, dim) for w in self.vocab]
        self.dim = dim
        self.tri: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.bi: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for a, b, c in zip(words, words[1:], words[2:], strict=False):
            self.tri[(a, b)][c] += 1
            self.bi[b][c] += 1
        self.starts = [w for w in self.vocab if w.isalpha()]

    def _scores(self, ctx: list[float], passes: int) -> list[float]:
        scores: list[float] = []
        for _ in range(passes):  # the real CPU work: vocabulary × dim multiply-adds per pass
            scores = [sum(c * e for c, e in zip(ctx, emb, strict=True)) for emb in self.emb]
        return scores

    def generate(self, prompt: list[str], n_tokens: int, rng: random.Random,
                 greedy: bool, passes: int):
        """Yield ``n_tokens`` words; CPU work ∝ len(prompt) / 8 + n_tokens, × ``passes``."""
        ctx = [0.0] * self.dim
        known = [w.lower() for w in prompt if w.lower() in self.index]
        for k, w in enumerate(known):  # "prefill": a lighter pass over the prompt
            e = self.emb[self.index[w]]
            ctx = [0.9 * c + 0.1 * x for c, x in zip(ctx, e, strict=True)]
            if k % 8 == 0:
                self._scores(ctx, passes)
        prev = tuple(known[-2:]) if len(known) >= 2 else (rng.choice(self.starts),) * 2
        for _ in range(n_tokens):
            scores = self._scores(ctx, passes)
            cands = self.tri.get(prev) or self.bi.get(prev[1]) or {rng.choice(self.starts): 1}
            logits = {w: math.log(n) + 0.05 * scores[self.index[w]] for w, n in cands.items()}
            if greedy:
                word = max(logits, key=lambda w: (logits[w], w))
            else:
                top = max(logits.values())
                words = list(logits)
                word = rng.choices(words, [math.exp(logits[w] - top) for w in words])[0]
            e = self.emb[self.index[word]]
            ctx = [0.9 * c + 0.1 * x for c, x in zip(ctx, e, strict=True)]
            prev = (prev[1], word)
            yield word


def detokenize(words: list[str]) -> str:
    out = ""
    for w in words:
        out += w if (not out or not w[0].isalnum()) else " " + w
    return out[:1].upper() + out[1:]


def target_length(instruction: str, rng: random.Random) -> int:
    """How many words the answer to ``instruction`` gets (before ``max_tokens``)."""
    low, p = instruction.lower(), len(tokenize(instruction))
    for keys, rule in _LENGTH_RULES:
        if any(k in low for k in keys):
            return int(rule(p, rng))
    return rng.randint(50, 90)


def parse_faults(spec: str) -> dict[str, float]:
    faults: dict[str, float] = {}
    for part in filter(None, (s.strip() for s in spec.split(","))):
        name, _, arg = part.partition("=")
        faults[name] = float(arg) if arg else 1.0
    return faults


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, api_key: str | None, work: float, verbose: bool) -> None:
        super().__init__((HOST, port), _Handler)
        self.model = NGramModel()
        self.api_key, self.work, self.verbose = api_key, work, verbose
        self.flaky: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (a timeout, a closed campaign) is normal here, not news.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Answer small writes at once (as real servers do): no 40 ms Nagle/delayed-ACK stall.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._json(status, {"error": {"message": message, "type": kind, "code": status}})

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "energykernel"}
                    for m in MODELS]
            self._json(200, {"object": "list", "data": data})
        elif self.path == "/health":
            self._json(200, {"status": "ok"})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            return self._error(404, f"no route {self.path}")
        try:
            req = json.loads(raw)
            messages = req["messages"]
            model_spec = str(req.get("model", ""))
            if not isinstance(messages, list) or not messages:
                raise ValueError("messages must be a non-empty list")
        except (ValueError, KeyError, TypeError) as exc:
            return self._error(400, f"bad request body: {exc}")
        model, _, suffix = model_spec.partition("@")
        marker = _FAULT_RE.search(json.dumps(messages[-1]) if messages else "")
        faults = parse_faults(",".join([suffix, self.headers.get("X-Demo-Fault", ""),
                                        marker.group(1) if marker else ""]))
        auth = self.headers.get("Authorization", "")
        with self.server.lock:
            self.server.requests.append({"model": model_spec, "authorization": bool(auth),
                                         "stream": bool(req.get("stream"))})
        if "echoauth" in faults:
            return self._error(401, f"Incorrect API key provided: {auth}", "auth_error")
        if self.server.api_key is not None and auth != f"Bearer {self.server.api_key}":
            return self._error(401, "Incorrect API key provided", "auth_error")
        if model not in MODELS:
            return self._error(404, f"model {model!r} not found; try {', '.join(MODELS)}")
        if "delay" in faults:
            time.sleep(faults["delay"])
        if "500" in faults:
            return self._error(500, "simulated server error", "server_error")
        if "flaky" in faults:
            key = hashlib.sha256(raw).hexdigest()
            with self.server.lock:
                self.server.flaky[key] += 1
                n = self.server.flaky[key]
            if n <= faults["flaky"]:
                return self._error(503, f"simulated overload ({n})", "server_error")
        self._complete(req, model, messages, faults)

    def _complete(self, req: dict, model: str, messages: list, faults: dict) -> None:
        texts = [_text_of(m.get("content")) for m in messages if isinstance(m, dict)]
        users = [_text_of(m.get("content")) for m in messages
                 if isinstance(m, dict) and m.get("role") == "user"]
        instruction = users[-1] if users else texts[-1]
        prompt_words = [w for t in texts for w in tokenize(t)]
        temperature = float(req.get("temperature") or 0)
        seed = int.from_bytes(hashlib.sha256((model + instruction).encode()).digest()[:8], "big")
        rng = random.Random(seed if temperature == 0 else None)
        n = target_length(instruction, rng)
        finish = "stop"
        max_tokens = req.get("max_tokens") or req.get("max_completion_tokens")
        if isinstance(max_tokens, int) and 0 < max_tokens < n:
            n, finish = max_tokens, "length"
        passes = max(1, round(self.server.work * MODELS[model] / 4))
        gen = self.server.model.generate(prompt_words, n, rng, temperature == 0, passes)
        usage = None if "nousage" in faults else {
            "prompt_tokens": len(prompt_words), "completion_tokens": n,
            "total_tokens": len(prompt_words) + n}
        ident = f"chatcmpl-{rng.getrandbits(48):012x}"
        base = {"id": ident, "created": int(time.time()), "model": model}
        if req.get("stream"):
            include = bool((req.get("stream_options") or {}).get("include_usage"))
            return self._stream(base, gen, finish, usage if include else None, faults)
        words = list(gen)
        body = {**base, "object": "chat.completion", "choices": [{
            "index": 0, "finish_reason": finish,
            "message": {"role": "assistant", "content": detokenize(words)}}]}
        if usage is not None:
            body["usage"] = usage
        data = json.dumps(body).encode()
        if "garbage" in faults:
            data = b"{this is not json" + data[:40]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if "cut" in faults:
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        self.wfile.write(data)

    def _chunk(self, payload: str) -> None:
        data = f"data: {payload}\n\n".encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _stream(self, base: dict, gen, finish: str, usage: dict | None, faults: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def event(delta: dict, reason: str | None = None) -> None:
            self._chunk(json.dumps({**base, "object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": delta, "finish_reason": reason}]}))

        event({"role": "assistant", "content": ""})
        if "garbage" in faults:
            self._chunk("{garbage, not json")
        for k, word in enumerate(gen):
            if k == 3 and "cut" in faults:
                self.close_connection = True  # no terminating chunk: an incomplete body
                return
            if k == 3 and "stall" in faults:
                time.sleep(faults["stall"])
            # the same spacing as detokenize(): a space before words, none before punctuation
            piece = detokenize([word]) if k == 0 else (" " + word if word[0].isalnum() else word)
            event({"content": piece})
        event({}, finish)
        if usage is not None:
            self._chunk(json.dumps({**base, "object": "chat.completion.chunk", "choices": [],
                                    "usage": usage}))
        self._chunk("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class DemoServer:
    """The demo server in a background thread: ``with DemoServer() as srv: srv.base_url``."""

    def __init__(self, port: int = 0, *, api_key: str | None = None, work: float = 4.0,
                 verbose: bool = False) -> None:
        self._server = _Server(port, api_key, work, verbose)
        self.port: int = self._server.server_address[1]
        self.base_url = f"http://{HOST}:{self.port}/v1"
        self._thread: threading.Thread | None = None

    @property
    def requests(self) -> list[dict[str, Any]]:
        """What each request asked for (model, stream) and whether it carried a key."""
        with self._server.lock:
            return list(self._server.requests)

    def start(self) -> DemoServer:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="ek-llm-demo", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DemoProcess:
    """The demo server as a separate process (as a real LLM service would be)."""

    def __init__(self, port: int = 0, *, work: float = 4.0, timeout_s: float = 30.0) -> None:
        cmd = [sys.executable, "-u", "-m", "energykernel.llm.demo_server",
               "--port", str(port), "--work", str(work)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self._proc.stdout.readline() if self._proc.stdout else ""
        match = re.search(r"http://[\d.]+:(\d+)/v1", line)
        if not match:
            self.stop()
            raise RuntimeError(f"demo server did not start (said {line.strip()!r})")
        self.port = int(match.group(1))
        self.base_url = f"http://{HOST}:{self.port}/v1"

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout:
            self._proc.stdout.close()

    def __enter__(self) -> DemoProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m energykernel.llm.demo_server",
                                     description="Tiny OpenAI-compatible server on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8011, help="TCP port (0: any free port)")
    parser.add_argument("--work", type=float, default=4.0,
                        help="vocabulary scoring passes per generated word (CPU per token)")
    parser.add_argument("--api-key", default=None,
                        help="require 'Authorization: Bearer KEY' (default: no key needed)")
    parser.add_argument("--verbose", action="store_true", help="log each request line")
    args = parser.parse_args(argv)
    if not 0 <= args.port < 65536:
        parser.error(f"--port {args.port}: must be 0..65535")
    try:
        server = _Server(args.port, args.api_key, args.work, args.verbose)
    except OSError as exc:
        print(f"demo server: cannot listen on {HOST}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return 1
    print(f"energykernel demo LLM server listening on http://{HOST}:"
          f"{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
