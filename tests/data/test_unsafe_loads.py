"""No code in the tree unpickles, or hands a path to a library that reads it as a URL.

Every Python file (and every code cell of the notebooks) is parsed, and each call is checked
against the unsafe forms: `torch.load` without `weights_only=True`, `allow_pickle` other than
False, pickle-family loaders, webdataset readers (a string is a URL list to them, with
`pipe:` shell commands) and a TarWriter given a path, `yaml.load` without a safe loader,
tar extraction, `trust_remote_code`, `eval`/`exec`, `shell=True`. Parsing, not text search:
comments, docstrings and messages that mention these names do not count.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal",
                  "shelve"}
WDS_READERS = {"WebDataset", "WebLoader", "DataPipeline", "SimpleShardList", "ResampledShards",
               "ShardList", "tarfile_samples", "tarfile_to_samples", "url_opener", "gopen",
               "ShardWriter"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def _name(node: ast.AST) -> str:
    """`a.b.c` of a Name/Attribute chain ('' for anything else)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _name(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return ""


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _call_problem(call: ast.Call) -> str | None:
    name = _name(call.func)
    last, module = name.rsplit(".", 1)[-1], name.rsplit(".", 1)[0] if "." in name else ""
    if name == "torch.load" and not _is(_keyword(call, "weights_only"), True):
        return "torch.load without weights_only=True"
    allow = _keyword(call, "allow_pickle")
    if allow is not None and not _is(allow, False) and last in {"load", "loads", "read_array"}:
        return "allow_pickle other than False"
    if module in PICKLE_MODULES and last in {"load", "loads", "open", "Unpickler"}:
        return f"{name}: unpickles"
    if last in {"read_pickle", "unsafe_load", "full_load", "full_load_all"}:
        return f"{name}: unpickles or builds arbitrary objects"
    if module.split(".")[-1] == "yaml" and last in {"load", "load_all"}:
        loader = _keyword(call, "Loader") or (call.args[1] if len(call.args) > 1 else None)
        if _name(loader).rsplit(".", 1)[-1] not in SAFE_YAML_LOADERS:
            return f"{name} without a safe loader"
    if last in WDS_READERS and module.split(".")[-1] in {"wds", "webdataset", ""} and (
            module or last in {"WebDataset", "WebLoader", "ShardWriter"}):
        return f"{name}: webdataset reads its argument as URLs (pipe: runs a shell)"
    writes_to = call.args[0] if call.args else None
    if last == "TarWriter" and not isinstance(writes_to, ast.Name | ast.Attribute):
        return "TarWriter given something other than an open file object"
    if last == "extractall":
        return "tar/zip extraction"
    if _is(_keyword(call, "trust_remote_code"), True) or _is(_keyword(call, "shell"), True):
        return "runs code from the data or a shell"
    if isinstance(call.func, ast.Name) and call.func.id in {"eval", "exec"}:
        return f"{call.func.id}()"
    return None


def _import_problem(node: ast.ImportFrom) -> str | None:
    if node.module in PICKLE_MODULES and any(a.name in {"load", "loads", "Unpickler"}
                                             for a in node.names):
        return f"from {node.module} import a loader"
    return None


def problems(source: str) -> list[tuple[int, str]]:
    """(line, what) of every unsafe form in one file's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        problem = _call_problem(node) if isinstance(node, ast.Call) else \
            _import_problem(node) if isinstance(node, ast.ImportFrom) else None
        if problem:
            found.append((node.lineno, problem))
    return sorted(found)


def _sources() -> dict[str, str]:
    """Every Python file of the project (and the notebooks' code), by relative path."""
    sources = {}
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if not {".venv", "build", ".git"} & set(relative.parts) and \
                not relative.parts[0].endswith(".egg-info"):
            sources[relative.as_posix()] = path.read_text()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        sources[path.relative_to(ROOT).as_posix()] = "\n".join(
            line for cell in cells if cell["cell_type"] == "code"
            for line in "".join(cell["source"]).splitlines() if line.lstrip()[:1] not in "%!")
    return sources


def test_the_check_flags_each_unsafe_form_and_passes_the_safe_ones():
    unsafe = ["torch.load(p)", "torch.load(p, weights_only=False)", "np.load(p, allow_pickle=True)",
              "numpy.load(p, allow_pickle=flag)", "np.lib.format.read_array(f, allow_pickle=True)",
              "pickle.loads(b)", "cloudpickle.load(f)",
              "pd.read_pickle(p)", "yaml.load(text)", "yaml.load(text, Loader=yaml.FullLoader)",
              "yaml.unsafe_load(text)", "wds.WebDataset(str(p))", "webdataset.WebDataset([p])",
              "WebDataset(urls)", "wds.SimpleShardList(p)", "wds.TarWriter(str(path))",
              "wds.TarWriter('out.tar')", "tar.extractall(d)", "subprocess.run(c, shell=True)",
              "AutoModel.from_pretrained(d, trust_remote_code=True)", "eval(text)",
              "from pickle import loads"]
    for line in unsafe:
        assert len(problems(line)) == 1, line
    safe = ["torch.load(p, map_location='cpu', weights_only=True)", "np.load(p)",
            "np.load(p, allow_pickle=False)", "yaml.safe_load(text)",
            "yaml.load(text, Loader=yaml.SafeLoader)", "wds.TarWriter(stream, encoder=False)",
            "archive.extractfile(info).read()", "model.eval()", "json.loads(text)",
            "np.save(buffer, hostile, allow_pickle=True)",  # writes a fixture, loads nothing
            "backend.extract(batch)", "# torch.load(p)\nx = 'pickle.loads(b)'"]
    for line in safe:
        assert problems(line) == [], line


def test_no_file_in_the_tree_unpickles_or_hands_webdataset_a_url():
    """Expected to fail on unitaf_data/features/indextts2.py (two torch.load calls without
    weights_only) until the IndexTTS2 branch that adds it is merged."""
    sources = _sources()
    assert "unitaf_data/reader.py" in sources and "unitaf_data/shards.py" in sources
    found = [f"{path}:{line}: {what}" for path, source in sources.items()
             for line, what in problems(source)]
    assert not found, "unsafe loads:\n" + "\n".join(found)
