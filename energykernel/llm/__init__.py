"""LLM inference energy: prompt campaigns against OpenAI-compatible services.

>>> from energykernel.llm import measure_prompts, correlations, forecast, compare
>>> ds = measure_prompts(["Summarize: …", "Translate: …"], base_url="http://localhost:11434/v1",
...                      model="llama3.2", task_type="general")       # doctest: +SKIP

Each prompt is one measured window (also a run ``llm/<task_type>`` in ``ek.runs()``); the
result is a Dataset with dim ``prompt``. The API key comes from ``api_key=``, else
``ENERGYKERNEL_LLM_API_KEY``, else ``OPENAI_API_KEY``; it is sent only to ``base_url`` and
never written anywhere. ``python -m energykernel.llm.demo_server`` is a small local service
to try it without a model. Needs the ``llm`` extra (httpx, tqdm).
"""

from __future__ import annotations

from ..viz.llm import plot_correlations
from .analysis import Forecast, compare, correlations, forecast
from .campaign import load_prompts, measure_prompts, save_prompts
from .client import ChatClient, ChatResult, LLMError

__all__ = [
    "ChatClient",
    "ChatResult",
    "Forecast",
    "LLMError",
    "compare",
    "correlations",
    "forecast",
    "load_prompts",
    "measure_prompts",
    "plot_correlations",
    "save_prompts",
]
