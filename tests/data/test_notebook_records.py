"""Runs read back from annotated notebooks, and ``energykernel compare`` on two of them."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from energykernel.cli.main import main
from energykernel.data.notebook import notebook_records


def _annotated(path, figures):
    cells = [new_markdown_cell("# t")]
    for k, (task, joules) in enumerate(figures):
        cell = new_code_cell(f"x = {k}")
        cell.metadata["energykernel"] = {
            "task": task, "instance": "host", "energy_j": {"cpu": joules},
            "method": {"cpu": "rapl"}, "duration_s": 1.0, "status": "ok",
            "run_id": f"{path.stem}-{k}",
            "energy_bounds_j": {"cpu": [joules - 0.5, joules + 0.5]}}
        cells.append(cell)
    cells.append(new_code_cell("unmeasured = True"))
    nbformat.write(new_notebook(cells=cells), path)
    return path


def test_records_from_cell_metadata(tmp_path):
    nb = nbformat.read(_annotated(tmp_path / "a.ipynb", [("load", 2.0), ("fit", 40.0)]), 4)
    records = notebook_records(nb, "a.ipynb")
    assert [r["task"] for r in records] == ["load", "fit"]
    assert records[1]["energy_bounds_j"] == {"cpu": [39.5, 40.5]}
    nb.cells[1].metadata["energykernel"]["energy_j"] = {"cpu": "lots"}
    with pytest.raises(ValueError, match=r"a\.ipynb: cell 2"):
        notebook_records(nb, "a.ipynb")
    with pytest.raises(ValueError, match="no measured cells"):
        notebook_records(new_notebook(cells=[new_code_cell("1")]), "plain.ipynb")


def test_compare_two_annotated_notebooks(tmp_path, capsys):
    a = _annotated(tmp_path / "a.energy.ipynb", [("load", 2.0), ("fit", 40.0)])
    b = _annotated(tmp_path / "b.energy.ipynb", [("load", 2.2), ("fit", 60.0)])
    out = tmp_path / "cmp.html"
    assert main(["compare", str(a), str(b), "-o", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].split()[0] == "fit" and "+20 J" in printed[1] and "changed" in printed[1]
    assert printed[2].split()[0] == "load" and "within bounds" in printed[2]
    assert "fit" in out.read_text()

    plain = tmp_path / "plain.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("1")]), plain)
    (tmp_path / "junk.ipynb").write_text("{not json")
    for other in (plain, tmp_path / "junk.ipynb"):
        assert main(["compare", str(a), str(other)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(other.name) in err[0]
