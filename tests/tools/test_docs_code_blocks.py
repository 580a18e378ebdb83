"""Run every ```python block of the docs (docs/*.md) and README.md, so they never rot.

Blocks of one file run in order in one shared namespace, as a reader would type them,
with the working directory set to a temporary folder holding a copy of ``docs/`` (so a
block may read or write ``docs/img/...`` as if run from the repository root, while
the files it writes land in the copy) and matplotlib on the non-interactive Agg
backend. A block is skipped when its first line is ``# doctest: skip`` or when the
line before its fence (blank lines aside) is the HTML comment ``<!-- no-run -->``;
use either sparingly, for blocks that need a download or minutes of training, or that
are sketches (``fit(...)``). A block whose first line is
``# requires: cuda`` runs only where ``tl.cuda.is_available()`` (a GPU, or Numba's
simulator with ``NUMBA_ENABLE_CUDASIM=1``); ``# requires: torch`` (any importable module
name, comma-separated for several) only where those optional packages are installed.
New pages are picked up automatically.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*$")
SKIP_COMMENT = "<!-- no-run -->"
CUDA_MARK = "# requires: cuda"
REQUIRES = "# requires:"


def markdown_files() -> list[Path]:
    files = sorted((ROOT / "docs").glob("**/*.md"))
    readme = ROOT / "README.md"
    return ([readme] if readme.exists() else []) + files


def cuda_available() -> bool:
    import tinygrad_lite as tl

    return tl.cuda.is_available()


def requirements_met(first_line: str) -> bool:
    """False when the block's ``# requires: a, b`` names something this machine lacks."""
    if not first_line.startswith(REQUIRES):
        return True
    import importlib.util

    for name in first_line[len(REQUIRES):].split(","):
        name = name.strip()
        if name == "cuda":
            if not cuda_available():
                return False
        elif importlib.util.find_spec(name) is None:
            return False
    return True


def python_blocks(path: Path) -> list[tuple[int, str, bool]]:
    """``(first line number, code, skipped)`` for each ```python block of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, index = [], 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, lang = match.group("indent"), match.group("lang")
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if lang in ("python", "py", "python3"):
            body = [line[len(indent):] if line.startswith(indent) else line.lstrip()
                    for line in lines[index + 1:end]]
            previous = index - 1
            while previous >= 0 and not lines[previous].strip():
                previous -= 1
            first = body[0].strip() if body else ""
            skipped = ((previous >= 0 and lines[previous].strip() == SKIP_COMMENT)
                       or first == "# doctest: skip"
                       or not requirements_met(first))
            blocks.append((index + 2, "\n".join(body) + "\n", skipped))
        index = end + 1
    return blocks


def test_extraction_rules(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n```python\na = 1\n```\n<!-- no-run -->\n\n```python\nboom\n```\n"
                    "```bash\nls\n```\n- item\n\n    ```python\n    # doctest: skip\n"
                    "    b = 2\n    ```\n```python\n# requires: cuda\nc = 3\n```\n")
    assert python_blocks(page) == [(3, "a = 1\n", False), (8, "boom\n", True),
                                   (16, "# doctest: skip\nb = 2\n", True),
                                   (20, "# requires: cuda\nc = 3\n", not cuda_available())]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_run(path, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    blocks = python_blocks(path)
    runnable = [block for block in blocks if not block[2]]
    if not runnable:
        pytest.skip(f"{path.name} has no runnable python blocks")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    relative = path.relative_to(ROOT)
    for line, code, _ in runnable:
        # pad with newlines so tracebacks point at the Markdown file's own line numbers
        compiled = compile("\n" * (line - 1) + code, str(relative), "exec")
        try:
            exec(compiled, namespace)
        except Exception as error:
            raise AssertionError(f"{relative}: the python block starting at line {line} "
                                 f"failed: {type(error).__name__}: {error}") from error
    import matplotlib.pyplot as plt

    plt.close("all")
