"""The pages in docs/ run as written.

For each docs/*.md file, every ```python block is run, in order, in one fresh Python
process and one namespace (so a block sees the variables of the blocks before it), with
the checkout on PYTHONPATH (tinynet then finds the MNIST files shipped in data/mnist),
the NumPy backend and one BLAS thread. A block that raises fails the test with the file,
the block's number and line, and the traceback. The checks that make this more than
"it ran" are the pages' own `assert` lines: each states a claim of the text (a gradient
computed by hand equals the model's, fit equals the hand-written loop, ...).

Blocks of other languages are not run: ```bash and ```text hold commands and output,
and ```py holds lines quoted from tinynet's source. A ```py block whose first line is
`# from tinynet/<file>.py` must quote that file exactly: each of its other lines (but
`...`) must be a line of the file, so the quotes follow the code when it changes.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
MIN_BLOCKS = {"how-tinynet-trains.md": 20, "gpu.md": 6}  # the pages that teach by running code
MIN_ASSERTS = {"how-tinynet-trains.md": 30, "gpu.md": 10}  # their checked claims
TIMEOUT_S = 120  # the two pages take a few seconds each; a hang should fail, not stall the suite

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^`\s]*)[^\n]*$")

# Runs in the child process: exec each block, record how far it got, exit 1 on the first error.
RUNNER = textwrap.dedent("""
    import json, linecache, sys, traceback
    blocks, report = json.loads(sys.stdin.read()), sys.argv[1]
    namespace, done = {"__name__": "__main__"}, 0
    for number, (line, source) in enumerate(blocks, start=1):
        name = f"{sys.argv[2]} block {number} (from line {line + 1})"
        linecache.cache[name] = (len(source), None, source.splitlines(True), name)  # tracebacks show the code
        try:
            exec(compile(source, name, "exec"), namespace)
        except BaseException:
            error = {"block": number, "line": line, "traceback": traceback.format_exc()}
            break
        done = number
    else:
        error = None
    with open(report, "w") as out:
        json.dump({"ran": done, "error": error}, out)
    sys.exit(0 if error is None else 1)
""")


def fenced_blocks(text: str) -> list[tuple[str, int, str]]:
    """(info string, line number of the opening fence, body) of every fenced block, in order."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, indent = i + 1, match["indent"]
        end = next((j for j in range(start, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise ValueError(f"line {start}: a ``` fence that is never closed")
        body = [line[len(indent):] if line.startswith(indent) else line for line in lines[start:end]]
        blocks.append((match["info"], start, "\n".join(body) + "\n"))
        i = end + 1
    return blocks


def python_blocks(page: Path) -> list[tuple[int, str]]:
    return [(line, body) for info, line, body in fenced_blocks(page.read_text()) if info == "python"]


def test_the_docs_pages_exist():
    names = {page.name for page in PAGES}
    assert {"README.md", "how-tinynet-trains.md", "gpu.md"} <= names, names
    index = (DOCS / "README.md").read_text()
    for name in names - {"README.md"}:
        assert f"({name})" in index, f"docs/README.md does not link {name}"


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_every_python_block_runs(page: Path, tmp_path: Path):
    blocks = python_blocks(page)
    assert len(blocks) >= MIN_BLOCKS.get(page.name, 1), f"{page.name}: only {len(blocks)} python blocks"
    asserts = sum(len(re.findall(r"^\s*assert\b", body, re.M)) for _, body in blocks)
    assert asserts >= MIN_ASSERTS.get(page.name, 0), f"{page.name}: only {asserts} assert lines in its python blocks"
    env = {key: value for key, value in os.environ.items()
           if key not in ("TINYNET_BACKEND", "TINYNET_FAST", "TINYNET_CUDA_GRAPHS", "TINYNET_DATA")}
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-c", RUNNER, str(report), f"docs/{page.name}"],
                          input=json.dumps(blocks), capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=TIMEOUT_S)
    assert report.exists(), f"docs/{page.name}: the runner died before reporting\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    result = json.loads(report.read_text())
    if result["error"]:
        error = result["error"]
        pytest.fail(f"docs/{page.name}, python block {error['block']} of {len(blocks)} (its fence is line {error['line']}) "
                    f"raised:\n{error['traceback']}\n--- output before it (tail) ---\n{done.stdout[-3000:]}", pytrace=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert result["ran"] == len(blocks), f"docs/{page.name}: ran {result['ran']} of {len(blocks)} blocks"


def _quotes() -> list[tuple[str, int, str, str]]:
    found = []
    for page in PAGES:
        for info, line, body in fenced_blocks(page.read_text()):
            first = body.splitlines()[0] if body.strip() else ""
            source = re.fullmatch(r"#\s*from\s+(tinynet/\S+\.py)\b.*", first.strip())
            if info == "py" and source:
                found.append((page.name, line, source[1], body))
    return found


def test_the_pages_quote_some_source():
    pages = {page for page, *_ in _quotes()}
    assert "how-tinynet-trains.md" in pages and "gpu.md" in pages


@pytest.mark.parametrize("page, line, source, body", _quotes(), ids=[f"{page}:{line}" for page, line, *_ in _quotes()])
def test_quoted_source_lines_are_in_the_source(page: str, line: int, source: str, body: str):
    """A ```py block that says `# from tinynet/x.py` quotes x.py exactly, line for line (indentation aside)."""
    path = ROOT / source
    assert path.is_file(), f"docs/{page} line {line}: {source} does not exist"
    known = {text.strip() for text in path.read_text().splitlines()}
    missing = [text for text in body.splitlines()[1:] if text.strip() not in ("", "...") and text.strip() not in known]
    assert not missing, f"docs/{page} line {line}: these lines are not in {source}:\n" + "\n".join(missing)
