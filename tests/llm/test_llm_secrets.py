"""The API key reaches the service and nothing else: no dataset, log, file or error has it."""

from __future__ import annotations

import pickle

import pytest

import energykernel as ek
from energykernel.llm import LLMError, load_prompts, measure_prompts, save_prompts
from energykernel.llm.client import ChatClient
from energykernel.llm.demo_server import DemoServer

KEY = "sk-ek-test-7f3a9c2e51d84b06a1"
ENV_KEY = "sk-ek-env-0b8e44d9c3a2f6151e"
URL_PASSWORD = "pw-in-url-93e1c0d7aa"

pytestmark = pytest.mark.usefixtures("estimate_only")

PROMPTS = ["Classify: fine", "[demo-fault: 500] Classify: broken",
           "[demo-fault: echoauth] Classify: echo", "[demo-fault: cut] Write a story",
           "[demo-fault: garbage] Classify: garbage", "Summarize: keys stay home"]


def assert_no_secret(data: bytes, where: str) -> None:
    for secret in (KEY, ENV_KEY, URL_PASSWORD):
        assert secret.encode() not in data, f"secret found in {where}"


def test_key_is_sent_but_never_written(tmp_path, log_dir, monkeypatch):
    with DemoServer(api_key=KEY) as srv:
        ds = measure_prompts(PROMPTS, base_url=srv.base_url, model="demo-ngram", api_key=KEY,
                             retries=1, backoff_s=0.01, progress=False)
        assert [r["authorization"] for r in srv.requests] == [True] * len(srv.requests)
        assert list(ds.status.values) == ["ok", "error", "error", "error", "error", "ok"]
        echoed = str(ds.error.values[2])
        assert "401" in echoed and "[REDACTED]" in echoed  # the service echoed it; we did not

        with pytest.raises(LLMError) as info, ChatClient(srv.base_url, api_key="wrong") as c:
            c.chat([{"role": "user", "content": "hi"}], model="demo-ngram")
        assert "401" in str(info.value)

    with DemoServer(api_key=ENV_KEY) as srv:
        monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
        ds_env = measure_prompts(PROMPTS[:3], base_url=srv.base_url, model="demo-ngram",
                                 retries=0, progress=False, stream=False)
        assert list(ds_env.status.values) == ["ok", "error", "error"]
        assert "[REDACTED]" in str(ds_env.error.values[2])
        monkeypatch.delenv("OPENAI_API_KEY")

    with DemoServer() as srv:  # credentials in the URL: Basic auth, never stored either
        base = srv.base_url.replace("http://", f"http://user:{URL_PASSWORD}@")
        ds_url = measure_prompts(PROMPTS[:3], base_url=base, model="demo-ngram", retries=0,
                                 progress=False)
        assert list(ds_url.status.values) == ["ok", "error", "error"]
        assert URL_PASSWORD not in ds_url.attrs["service"]
        assert "Basic [REDACTED]" in str(ds_url.error.values[2])

    ek.save(tmp_path / "runs.nc")
    save_prompts(ds, tmp_path / "prompts.nc")
    save_prompts(ds_env, tmp_path / "prompts_env.nc")
    save_prompts(ds_url, tmp_path / "prompts_url.nc")
    everything = (ds, ds_env, ds_url)
    (tmp_path / "ds.txt").write_text("".join(repr(d) + str(d.to_dict()) for d in everything))
    (tmp_path / "ds.pkl").write_bytes(pickle.dumps(everything))
    assert load_prompts(log_dir).sizes["prompt"] == len(PROMPTS) + 6
    for d in everything:
        assert_no_secret(d.to_netcdf(engine="h5netcdf"), "serialized dataset")
    written = [p for p in list(tmp_path.rglob("*")) + list(log_dir.rglob("*")) if p.is_file()]
    assert any(p.name.startswith("llm-") for p in written)  # the campaign logs were checked
    assert len(written) >= 7
    for path in written:
        assert_no_secret(path.read_bytes(), str(path))
    assert_no_secret(repr(ek.runs().to_dict()).encode(), "ek.runs()")


def test_env_var_precedence(monkeypatch):
    from energykernel.llm.client import resolve_api_key

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ENERGYKERNEL_LLM_API_KEY", raising=False)
    assert resolve_api_key() is None
    monkeypatch.setenv("OPENAI_API_KEY", "a-key")
    assert resolve_api_key() == "a-key"
    monkeypatch.setenv("ENERGYKERNEL_LLM_API_KEY", "ek-key")
    assert resolve_api_key() == "ek-key" and resolve_api_key("arg") == "arg"
    with pytest.raises(ValueError) as info:
        resolve_api_key(f"{KEY}\nX-Injected: 1")
    assert KEY not in str(info.value)
