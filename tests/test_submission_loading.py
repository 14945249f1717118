"""Loading a submission (`grader.box.submission.load`, in the runner): what loads, what the judge is told when it does
not, and the entry points' contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.box.submission import ContractError, load


def _write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text)
    return name


def test_a_file_loads_and_each_puzzle_says_whether_its_entry_point_is_usable(tmp_path: Path):
    spec = _write(tmp_path, "sub.py", "def dequantize_nf4(weight, quant_state):\n    return weight\n"
                                      "def memory_efficient_linear(X, linear):\n    return X\n"
                                      "helper = 3\n")
    loaded = load(spec, root=tmp_path)
    facts = loaded.describe()
    assert facts["loaded"] and facts["name"] == "sub" and facts["callables"] == ["dequantize_nf4",
                                                                                 "memory_efficient_linear"]
    assert facts["entries"]["A"] == {"present": True, "error": None}
    assert facts["entries"]["C"] == {"present": False, "error": None}
    assert facts["entries"]["D"]["present"] and "cannot be called as memory_efficient_linear(X, linear, labels, " \
        "forward_function, chunk_size)" in facts["entries"]["D"]["error"]
    assert loaded.entry_point("A")(7, None) == 7  # guarded, and still the submission's function


def test_a_package_directory_loads_through_its_init(tmp_path: Path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("from .impl import compile_qlora\n")
    (tmp_path / "pkg" / "impl.py").write_text("def compile_qlora(model):\n    return model\n")
    loaded = load("pkg", root=tmp_path)
    assert loaded.provides("C") and loaded.files == (str(tmp_path / "pkg"),)


@pytest.mark.parametrize("text,words", [
    ("def broken(:\n", "SyntaxError"),
    ("raise SystemExit(3)\n", "SystemExit: 3"),
    ("import no_such_module_here\n", "No module named 'no_such_module_here'"),
])
def test_a_submission_that_fails_to_load_is_reported_with_why_never_raised(tmp_path: Path, text: str, words: str):
    loaded = load(_write(tmp_path, "bad.py", text), root=tmp_path)
    assert loaded.module is None and words in loaded.load_error
    with pytest.raises(ContractError, match="could not be loaded"):
        loaded.entry_point("A")


def test_a_missing_path_and_a_directory_without_init_are_named(tmp_path: Path):
    assert "does not exist" in load("nowhere.py", root=tmp_path).load_error
    (tmp_path / "plain_dir").mkdir()
    assert "has no __init__.py" in load("plain_dir", root=tmp_path).load_error
