"""The progress bar of ``energykernel measure`` and of LLM campaigns: tqdm's notebook bar
(an ipywidget) when running inside a Jupyter kernel that has ipywidgets, so JupyterLab
shows a bar rather than a block of stderr text; plain tqdm in a terminal."""

from __future__ import annotations

import sys
from typing import Any


def in_kernel() -> bool:
    """Whether this process is a Jupyter kernel's (IPython is never imported here)."""
    if "IPython" not in sys.modules or "ipykernel" not in sys.modules:
        return False
    shell = sys.modules["IPython"].get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def bar_class(disable: bool = False) -> type:
    """``tqdm.notebook.tqdm`` inside a kernel with ipywidgets (unless ``disable``), else
    ``tqdm.tqdm``."""
    if not disable and in_kernel():
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm as notebook_bar
        except ImportError:
            pass
        else:
            return notebook_bar
    from tqdm import tqdm

    return tqdm


def progress_bar(iterable: Any = None, **kwargs: Any) -> Any:
    """``tqdm(iterable, **kwargs)``, as a notebook widget inside a kernel with ipywidgets."""
    return bar_class(bool(kwargs.get("disable")))(iterable, **kwargs)
