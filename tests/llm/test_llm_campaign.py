"""Prompt campaigns against the real demo server: datasets, runs, failures, resume."""

from __future__ import annotations

import json
import math

import httpx
import numpy as np
import pandas as pd
import pytest

import energykernel as ek
from energykernel.llm import campaign as campaign_mod
from energykernel.llm import load_prompts, measure_prompts, save_prompts
from energykernel.llm.client import ChatClient
from energykernel.llm.demo_server import DemoServer

pytestmark = pytest.mark.usefixtures("estimate_only")


@pytest.fixture
def server():
    with DemoServer() as srv:
        yield srv


def run_lines(log_dir) -> list[dict]:
    out = []
    for f in sorted(log_dir.glob("*.jsonl")):
        if not f.name.startswith("llm-"):
            out += [json.loads(x) for x in f.read_text().splitlines()]
    return [x for x in out if x["kind"] == "run"]


TABLE = pd.DataFrame({
    "prompt": ["Classify the sentiment: great food", "Summarize: " + "the river runs " * 12,
               "Classify the sentiment: cold soup", "Translate to French: the weather is fine"],
    "task_type": ["classify", "summarize", "classify", "translate"],
})


def test_streaming_campaign_dataset_and_runs(server, log_dir):
    ds = measure_prompts(TABLE, base_url=server.base_url, model="demo-ngram", progress=False)
    assert ds.sizes["prompt"] == 4
    assert list(ds.task_type.values) == list(TABLE.task_type)
    assert list(ds.prompt_text.values) == list(TABLE.prompt)
    assert (ds.status.values == "ok").all() and (ds.error.values == "").all()
    assert (ds.token_source.values == "usage").all()
    assert (ds.response_tokens.values > 0).all() and (ds.prompt_tokens.values > 0).all()
    assert np.isfinite(ds.ttft.values).all() and (ds.ttft.values <= ds.duration.values).all()
    assert (ds.method.values == "estimate").all() and (ds.energy.values >= 0).all()
    assert ds.energy.attrs["units"] == "J" and ds.duration.attrs["units"] == "s"
    assert ds.attrs["energy_scope"] == "machine" and (ds.energy_scope.values == "machine").all()
    assert all(str(r).strip() for r in ds.response_text.values)
    runs = ek.runs()
    assert list(runs.task.values) == [f"llm/{t}" for t in TABLE.task_type]
    assert list(runs.run_id.values) == list(ds.run_id.values)
    assert len(run_lines(log_dir)) == 4  # every prompt is in the run log


def test_plain_campaign_and_input_forms(server):
    chat = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Classify: sunny"}]
    ds = measure_prompts(["Classify: rain", chat, [chat[1]]], base_url=server.base_url,
                         model="demo-ngram", stream=False, task_type="mixed", progress=False)
    assert list(ds.prompt_text.values) == ["Classify: rain", "Classify: sunny", "Classify: sunny"]
    assert np.isnan(ds.ttft.values).all()
    assert json.loads(ds.messages.values[1]) == chat
    assert set(ds.task_type.values) == {"mixed"}
    one = measure_prompts("Classify: snow", base_url=server.base_url, model="demo-ngram",
                          progress=False)
    assert one.sizes["prompt"] == 1 and one.task_type.values[0] == "general"
    rows = measure_prompts([{"prompt": "Classify: hail", "task_type": "c"}],
                           base_url=server.base_url, model="demo-ngram", progress=False)
    assert rows.task_type.values[0] == "c"


@pytest.mark.parametrize("bad,match", [
    ([""], "non-empty prompt"), ([{"text": "x"}], "'prompt'"), (42, "prompts"),
    ([[{"role": "user"}]], "'content'"),
])
def test_bad_prompts_are_named(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        measure_prompts(bad, base_url="http://127.0.0.1:9/v1", model="m", progress=False)


def test_bad_task_type_and_model():
    with pytest.raises(ValueError, match="task_type"):
        measure_prompts(["x"], base_url="http://127.0.0.1:9/v1", model="m", task_type="a/b")
    with pytest.raises(ValueError, match="model"):
        measure_prompts(["x"], base_url="http://127.0.0.1:9/v1", model="")
    with pytest.raises(ValueError, match="max_tokens"):
        measure_prompts(["x"], base_url="http://127.0.0.1:9/v1", model="m", max_tokens=0)
    with pytest.raises(ValueError, match="retries"):
        measure_prompts(["x"], base_url="http://127.0.0.1:9/v1", model="m", retries=-1)


def test_failures_are_recorded_and_campaign_continues(server, log_dir):
    prompts = ["Classify: one", "[demo-fault: 500] Classify: two",
               "[demo-fault: garbage] Classify: three", "[demo-fault: cut] Write a story",
               "[demo-fault: delay=2] Classify: slow", "[demo-fault: flaky=1] Classify: flaky",
               "Classify: last"]
    ds = measure_prompts(prompts, base_url=server.base_url, model="demo-ngram", retries=1,
                         backoff_s=0.01, timeout_s=0.5, progress=False)
    assert list(ds.status.values) == ["ok", "error", "error", "error", "error", "ok", "ok"]
    err = [str(e) for e in ds.error.values]
    assert "500" in err[1] and "JSON" in err[2] and "timed out" in err[4]
    assert "RemoteProtocolError" in err[3]
    assert list(ds.attempts.values) == [1, 2, 2, 2, 2, 2, 1]
    assert (ds.response_tokens.values[1:5] == 0).all()
    assert (ds.token_source.values[1:5] == "approx").all()
    runs = ek.runs()
    assert list(runs.status.values) == list(ds.status.values)
    assert [r["status"] for r in run_lines(log_dir)] == list(ds.status.values)
    assert "500" in str(runs.error.values[1])


def test_interrupted_campaign_resumes_from_log_dir(server, log_dir, monkeypatch):
    prompts = [f"Classify the sentiment: case {i}" for i in range(5)]
    real_chat, calls = ChatClient.chat, []

    def chat(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_chat(self, *args, **kwargs)

    monkeypatch.setattr(ChatClient, "chat", chat)
    with pytest.raises(KeyboardInterrupt):
        measure_prompts(prompts, base_url=server.base_url, model="demo-ngram", progress=False)
    assert [r["status"] for r in run_lines(log_dir)] == ["ok", "ok", "interrupted"]
    monkeypatch.setattr(ChatClient, "chat", real_chat)
    n_before = len(server.requests)
    ds = measure_prompts(prompts, base_url=server.base_url, model="demo-ngram",
                         resume=log_dir, progress=False)
    assert list(ds.resumed.values) == [True, True, False, False, False]
    assert (ds.status.values == "ok").all()
    assert len(server.requests) - n_before == 3
    assert list(ds.prompt_text.values) == prompts


def test_resume_from_dataset_and_file_reruns_only_failures(server, tmp_path):
    prompts = ["Classify: a", "[demo-fault: 500] Classify: b", "Classify: a"]
    first = measure_prompts(prompts, base_url=server.base_url, model="demo-ngram", retries=0,
                            progress=False)
    assert list(first.status.values) == ["ok", "error", "ok"]
    path = save_prompts(first, tmp_path / "first.nc")
    loaded = load_prompts(path)
    assert list(loaded.prompt_key.values) == list(first.prompt_key.values)
    for resume in (first, path):
        n_before = len(server.requests)
        again = measure_prompts(prompts, base_url=server.base_url, model="demo-ngram",
                                retries=0, resume=resume, progress=False)
        assert list(again.resumed.values) == [True, False, True]
        assert len(server.requests) - n_before == 1
        assert again.response_text.values[0] == first.response_text.values[0]
        np.testing.assert_allclose(again.energy.values[0], first.energy.values[0])
    other = measure_prompts(prompts[:1], base_url=server.base_url, model="demo-ngram-large",
                            resume=first, progress=False)
    assert not other.resumed.values[0]  # another model is another measurement
    with pytest.raises(ValueError, match="prompt_key"):
        measure_prompts(prompts, base_url=server.base_url, model="demo-ngram",
                        resume=ek.runs(), progress=False)


def test_missing_usage_is_approximated(server):
    ds = measure_prompts(["Classify: approximately"], base_url=server.base_url,
                         model="demo-ngram@nousage", progress=False)
    assert ds.token_source.values[0] == "approx"
    assert ds.prompt_tokens.values[0] == math.ceil(len("Classify: approximately") / 4)
    assert ds.response_tokens.values[0] == math.ceil(len(ds.response_text.values[0]) / 4)


def test_remote_service_is_client_only(monkeypatch):
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.host)
        body = {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
        return httpx.Response(200, json=body)

    def client(*args, **kwargs):
        return ChatClient(*args, transport=httpx.MockTransport(handler), **kwargs)

    monkeypatch.setattr(campaign_mod, "ChatClient", client)
    ds = measure_prompts(["hello"], base_url="https://llm.example.com/v1", model="m",
                         stream=False, progress=False)
    assert sent == ["llm.example.com"]
    assert ds.attrs["energy_scope"] == "client-only"
    assert ds.energy_scope.values[0] == "client-only"


def test_energy_and_time_grow_with_output_length(server):
    prompts = ["Classify the sentiment: fine"] * 3 + ["Write an essay on heat"] * 3
    ds = measure_prompts(prompts, base_url=server.base_url, model="demo-ngram",
                         task_type=["short"] * 3 + ["long"] * 3, progress=False)
    short, long = ds.isel(prompt=slice(0, 3)), ds.isel(prompt=slice(3, 6))
    assert long.response_tokens.min() > 20 * short.response_tokens.max()
    assert float(long.duration.mean()) > 5 * float(short.duration.mean())
    assert float(long.energy.sel(component="cpu").mean()) > 2 * float(
        short.energy.sel(component="cpu").mean())
