"""The demo OpenAI-compatible server and the client, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from energykernel.llm.client import (
    ChatClient,
    LLMError,
    clean_text,
    is_loopback,
    public_url,
    redact,
    secret_forms,
)
from energykernel.llm.demo_server import DemoProcess, DemoServer, main, target_length


@pytest.fixture
def server():
    with DemoServer() as srv:
        yield srv


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_models_and_loopback_only(server):
    assert server._server.server_address[0] == "127.0.0.1"
    with ChatClient(server.base_url) as client:
        assert client.models() == ["demo-ngram", "demo-ngram-large"]


def test_stream_and_plain_agree_and_count_usage(server):
    with ChatClient(server.base_url) as client:
        plain = client.chat(ask("Explain how a heat pump works"), model="demo-ngram",
                            stream=False)
        streamed = client.chat(ask("Explain how a heat pump works"), model="demo-ngram")
    assert plain.text == streamed.text and plain.text
    assert plain.completion_tokens == streamed.completion_tokens >= 150
    assert plain.prompt_tokens == streamed.prompt_tokens == 6
    assert plain.ttft_s is None and streamed.ttft_s > 0
    assert plain.finish_reason == streamed.finish_reason == "stop"
    assert plain.attempts == streamed.attempts == 1


def test_answer_length_follows_instruction_and_max_tokens(server):
    with ChatClient(server.base_url) as client:
        n = {p: client.chat(ask(p), model="demo-ngram").completion_tokens for p in (
            "Classify the sentiment: lovely day", "Summarize: " + "words and more " * 40,
            "Write a story about the sea")}
        capped = client.chat(ask("Write a story about the sea"), model="demo-ngram",
                             max_tokens=7, stream=False)
    short, mid, long = n.values()
    assert short <= 6 < mid < long
    assert capped.completion_tokens == 7 and capped.finish_reason == "length"


def test_cpu_work_grows_with_generated_tokens(server):
    with ChatClient(server.base_url) as client:
        def cpu_s(prompt: str) -> float:
            t = time.process_time()  # client and in-thread server together
            client.chat(ask(prompt), model="demo-ngram", stream=False)
            return time.process_time() - t

        cpu_s("warm up")
        short = min(cpu_s("Classify the sentiment: nice") for _ in range(3))
        long = min(cpu_s("Write an essay about rivers") for _ in range(2))
    assert long > 5 * short


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("fault", ["500", "garbage", "cut"])
def test_faults_are_retried_then_reported(server, fault, stream):
    with ChatClient(server.base_url, retries=1, backoff_s=0.01) as client, \
            pytest.raises(LLMError) as info:
        client.chat(ask("hello"), model=f"demo-ngram@{fault}", stream=stream)
    assert info.value.retryable and info.value.attempts == 2
    assert len(server.requests) == 2


def test_client_errors_are_not_retried(server):
    with ChatClient(server.base_url, retries=3, backoff_s=0.01) as client, \
            pytest.raises(LLMError, match="404") as info:
        client.chat(ask("hello"), model="no-such-model")
    assert info.value.attempts == 1 and info.value.status_code == 404


def test_flaky_server_succeeds_after_retries(server):
    with ChatClient(server.base_url, retries=2, backoff_s=0.01) as client:
        result = client.chat(ask("Classify: ok"), model="demo-ngram@flaky=2")
    assert result.attempts == 3 and result.text


@pytest.mark.parametrize("fault,stream", [("delay=3", False), ("stall=3", True)])
def test_timeout_per_attempt(server, fault, stream):
    with ChatClient(server.base_url, timeout_s=0.3, retries=0) as client, \
            pytest.raises(LLMError, match="timed out"):
        client.chat(ask("Write a story"), model=f"demo-ngram@{fault}", stream=stream)


def test_no_usage_gives_none_counts(server):
    with ChatClient(server.base_url) as client:
        r = client.chat(ask("Classify: fine"), model="demo-ngram@nousage")
    assert r.prompt_tokens is None and r.completion_tokens is None and r.text


def test_fault_header_and_prompt_marker(server):
    with ChatClient(server.base_url, retries=0) as client, pytest.raises(LLMError, match="500"):
        client.chat(ask("[demo-fault: 500] hi"), model="demo-ngram")
    r = httpx.post(f"{server.base_url}/chat/completions", headers={"X-Demo-Fault": "500"},
                   json={"model": "demo-ngram", "messages": ask("hi")})
    assert r.status_code == 500


def test_redirect_is_not_followed_so_key_stays_home():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers.get("authorization")))
        return httpx.Response(307, headers={"Location": "http://evil.example/v1/chat/completions"})

    client = ChatClient("http://127.0.0.1:9/v1", api_key="sk-test-redirect-1234",
                        transport=httpx.MockTransport(handler))
    with client, pytest.raises(LLMError, match="redirect") as info:
        client.chat(ask("hi"), model="m")
    assert seen == [("127.0.0.1", "Bearer sk-test-redirect-1234")]
    assert "sk-test" not in str(info.value)


def test_url_helpers():
    assert is_loopback("http://localhost:11434/v1") and is_loopback("http://127.0.0.2/v1")
    assert is_loopback("http://[::1]:8000/v1") and not is_loopback("https://api.openai.com/v1")
    assert public_url("https://u:secret@api.example.com:8443/v1/?api-key=abc") == \
        "https://api.example.com:8443/v1"
    text = redact("Bearer abc.def key=zzz https://u:pw@h/x sk-123456", ["sk-123456"])
    assert "abc.def" not in text and "zzz" not in text and "pw" not in text
    assert "sk-123456" not in text
    forms = secret_forms("http://al%40ce:p%40ss@h/v1", "sk-key-1")
    assert set(forms) == {"sk-key-1", "p%40ss", "p@ss", "YWxAY2U6cEBzcw=="}  # al@ce:p@ss
    assert secret_forms("http://tok-only-9@h/v1", None) == ("tok-only-9", "dG9rLW9ubHktOTo=")
    assert secret_forms("http://h/v1", None) == ()
    assert redact("x YWxAY2U6cEBzcw== p@ss", forms) == "x [REDACTED] [REDACTED]"
    assert clean_text("a\x00b\ud800") == "a\ufffdb\ufffd"
    with pytest.raises(ValueError, match="base_url"):
        ChatClient("localhost:11434")
    with pytest.raises(ValueError, match="timeout_s"):
        ChatClient("http://localhost/v1", timeout_s=0)


def test_target_length_rules():
    import random

    rng = random.Random(0)
    assert target_length("In one word: is it sunny?", rng) <= 6
    assert 150 <= target_length("Write a poem", rng) <= 240


def test_subprocess_server_and_cli():
    with DemoProcess(port=0, work=1) as proc, ChatClient(proc.base_url) as client:
        assert client.chat(ask("Classify: ok"), model="demo-ngram").text
    with pytest.raises(SystemExit):
        main(["--port", "70000"])


def test_stream_options_dropped_for_servers_that_reject_it():
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if "stream_options" in body:
            return httpx.Response(400, json={"error": {"message": "unknown field stream_options"}})
        sse = ('data: {"choices": [{"delta": {"content": "Hi"}, "finish_reason": null}]}\n\n'
               'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\n'
               "data: [DONE]\n\n")
        return httpx.Response(200, text=sse, headers={"Content-Type": "text/event-stream"})

    with ChatClient("http://127.0.0.1:9/v1", transport=httpx.MockTransport(handler)) as client:
        r = client.chat(ask("hi"), model="old")
    assert r.text == "Hi" and r.attempts == 1 and r.completion_tokens is None
    assert len(bodies) == 2 and "stream_options" not in bodies[1]
