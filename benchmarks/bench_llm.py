"""LLM campaigns: per-prompt overhead of ``measure_prompts`` over a bare httpx request.

Run: ``.venv/bin/python benchmarks/bench_llm.py [--prompts 100] [--no-stream]``. Uses the demo server in a
thread with ``max_tokens=1`` (so the server's own work is tiny and the machinery shows), the
estimate backend, and a throwaway log directory. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("ENERGYKERNEL_LOG_DIR", tempfile.mkdtemp(prefix="ek-bench-llm-"))
os.environ.setdefault("ENERGYKERNEL_BACKENDS", "estimate")


def per_prompt_s(fns: dict, n: int, repeat: int = 5) -> dict[str, float]:
    """Best-of-``repeat`` mean seconds per prompt of each ``fn(n)``, interleaved so that
    load from elsewhere on the machine hits every variant alike."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn(n)
            best[name] = min(best[name], (time.perf_counter() - t) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=100, help="prompts per timing")
    parser.add_argument("--no-stream", action="store_true", help="non-streaming requests")
    args = parser.parse_args()
    import httpx

    from energykernel.llm import ChatClient, measure_prompts
    from energykernel.llm.demo_server import DemoServer

    stream = not args.no_stream
    body = {"model": "demo-ngram", "max_tokens": 1, "temperature": 0, "stream": stream,
            "messages": [{"role": "user", "content": "Classify: fine"}]}
    with DemoServer(work=1) as srv:
        url = f"{srv.base_url}/chat/completions"
        http = httpx.Client()

        def bare(n: int) -> None:
            for _ in range(n):
                if stream:
                    with http.stream("POST", url, json=body) as r:
                        for _line in r.iter_lines():
                            pass
                else:
                    http.post(url, json=body).json()

        client = ChatClient(srv.base_url)

        def chat(n: int) -> None:
            for _ in range(n):
                client.chat(body["messages"], model="demo-ngram", max_tokens=1, stream=stream)

        prompts = [f"Classify: case {i}" for i in range(args.prompts)]

        def campaign(n: int, log: bool = True) -> None:
            measure_prompts(prompts[:n], base_url=srv.base_url, model="demo-ngram",
                            max_tokens=1, stream=stream, progress=False, campaign_log=log)

        bare(20)
        chat(20)
        campaign(20)
        n = args.prompts
        times = per_prompt_s({
            "bare httpx request": bare, "ChatClient.chat": chat,
            "measure_prompts (no campaign log)": lambda k: campaign(k, log=False),
            "measure_prompts": campaign}, n)
        http.close()
        client.close()

    print(f"{'stream' if stream else 'plain'} requests, {n} prompts, max_tokens=1, "
          f"estimate backend, best of 5 (interleaved)")
    t_bare = times["bare httpx request"]
    for name, t in times.items():
        print(f"  {name:36} {t * 1e3:7.3f} ms/prompt   overhead {1e3 * (t - t_bare):+7.3f} ms")

if __name__ == "__main__":
    main()
