"""The set-up stays coherent: pyproject and environment.yml agree, CI runs the README's test command."""

import ast
import json
import re
from pathlib import Path

import nbformat
import tomllib
import yaml

import irnlib
from irnlib.imaging import metrics

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}  # PyPI name -> conda-forge name, where they differ


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", requirement.strip()).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_deps = project["dependencies"] + project["optional-dependencies"]["test"]
    expected = {CONDA_NAMES.get(n, n): spec for n, spec in map(_split, pip_deps)}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = dict(_split(d) for d in env["dependencies"] if isinstance(d, str) and not d.startswith(("python", "pip")))
    assert conda == expected


def test_readme_gives_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert commands == ["make reproduce", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^reproduce:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "TORCH ?= torch==" in makefile  # a pinned torch, never a bare requirement


def test_public_api():
    for name in ("IRN", "load_checkpoint", "quantize", "imresize"):
        assert hasattr(irnlib, name)
    assert callable(metrics.psnr) and callable(metrics.ssim)


def test_every_notebook_is_committed_stripped_with_a_profile_parameter():
    books = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(books) == 5
    for path in books:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs"
        params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and re.search(r"^profile = ", params[0].source, re.M), path.name
        ids = [cell.get("id") for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]]
        assert all(ids) and len(set(ids)) == len(ids), f"{path.name}: every cell needs an id of its own"


# The package's layers, lowest first: a module may import from its own layer and the ones below.
LAYERS = ["runtime", "paper", "imaging", "model", "data", "protocol", "training", "experiments", "app"]
ROOT_MODULES = {"paper": "paper", "train": "training", "__main__": "app"}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "irnlib" or len(parts) < 2:
        return None  # the package's __init__ re-exports for users and belongs to no layer
    return parts[1] if parts[1] in LAYERS else ROOT_MODULES[parts[1]]


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "irnlib":
            names = [f"irnlib.{a.name}" for a in node.names] if node.module == "irnlib" else [node.module]
            found += [(node.lineno, name) for name in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "irnlib"]
    return found


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for path in sorted((ROOT / "irnlib").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        mine = _layer(module)
        for line, target in _imports(path) if mine else []:
            theirs = _layer(target)
            if theirs and LAYERS.index(theirs) > LAYERS.index(mine):
                upward.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {target} ({theirs})")
    assert upward == []


def test_every_folder_of_the_package_is_a_layer():
    folders = {p.name for p in (ROOT / "irnlib").iterdir() if p.is_dir() and p.name != "__pycache__"}
    modules = {p.stem for p in (ROOT / "irnlib").glob("*.py")} - {"__init__"}
    assert folders <= set(LAYERS) and modules == set(ROOT_MODULES)


def _readme_tree() -> dict[str, list[str]]:
    """The README's layout tree: top-level entries and the entries under irnlib/."""
    block = re.search(r"```text\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    tree = {"top": [], "irnlib": []}
    for line in block.splitlines():
        found = re.match(r"^(│   |    )?[├└]── (\S+)", line)
        if found:
            tree["irnlib" if found.group(1) else "top"].append(found.group(2).rstrip("/"))
    return tree


def test_the_readme_layout_matches_the_files():
    tree = _readme_tree()
    assert all((ROOT / name).exists() for name in tree["top"]), tree["top"]
    package = {p.name.removesuffix(".py") for p in (ROOT / "irnlib").iterdir() if p.name != "__pycache__"}
    listed = {name.removesuffix(".py") for name in tree["irnlib"]}
    assert listed == package - {"__init__", "__main__"}


# Sizes past which a module or a function holds two jobs (the issue that split train.py set them).
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60  # the body, without its docstring


def test_no_module_or_function_outgrows_one_job():
    too_long = []
    for path in sorted((ROOT / "irnlib").rglob("*.py")):
        text = path.read_text()
        name = path.relative_to(ROOT)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body[1:] if ast.get_docstring(node) is not None and len(node.body) > 1 else node.body
                lines = node.end_lineno - body[0].lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.lineno} {node.name}(): {lines} lines")
    assert too_long == []


def test_every_test_named_in_bad_inputs_exists():
    table = (ROOT / "tests" / "BAD_INPUTS.md").read_text()
    named = set(re.findall(r"`(test_[a-z_]+)::(test_[a-z0-9_]+)`", table))
    defined = {
        path.stem: {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}
        for path in (ROOT / "tests").glob("test_*.py")
    }
    assert len(named) > 50
    assert sorted(f"{m}::{t}" for m, t in named if t not in defined.get(m, set())) == []
