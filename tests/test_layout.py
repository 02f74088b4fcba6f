"""The layout's contracts: imports point one way, no cycles, no hidden imports inside functions,
and the processes on the glasses load only what they need."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("device", "cloud_sync", "calibration")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources(*packages: str) -> dict[str, Path]:
    return {_module(p): p for package in packages for p in (ROOT / package).rglob("*.py")}


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    return []


def _top_level_imports(path: Path, known: set[str]) -> set[str]:
    """Project modules imported at module level (`from pkg import module` counts as module,
    not as the package: the package is imported already, or being imported, either way)."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = {f"{node.module}.{a.name}" for a in node.names} & known
            found.update(modules or {node.module} & known)
        else:
            found.update(name for name in _imported(node) if name in known)
    return found


def _function_imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, module, the function's text up to the import) per project import in a function."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for fn in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                names = [n for n in _imported(node) if n.split(".")[0] in PROJECT]
                if names:
                    before = "\n".join(lines[fn.lineno - 1:node.lineno - 1])
                    out.append((node.lineno, names[0], before))
    return out


def test_no_import_cycles():
    sources = _sources(*PROJECT)
    graph = {m: _top_level_imports(p, set(sources)) - {m} for m, p in sources.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_project_imports_inside_functions_are_deliberate_deferrals():
    """An import inside a function hides a dependency until run time; only a deliberate
    deferral of something heavy is allowed, said in a `# deferred:` comment before it in the
    function."""
    hidden = []
    for module, path in _sources("device", "cloud_sync").items():
        for lineno, name, before in _function_imports(path):
            if "# deferred" not in before:
                hidden.append(f"{path.relative_to(ROOT)}:{lineno} imports {name}")
    assert hidden == []


# (importer prefix, forbidden prefix, why)
RULES = [
    ("device.live", "device.modelstore", "the live path never reaches into the model lifecycle"),
    ("device.modelstore", "device.live", "the model lifecycle shares geometry and metrics with "
                                         "the live path, never its modules"),
    ("device.modelstore", "device.assembly", "the composition root builds the model watch, "
                                             "not the other way round"),
    ("device.stages", "device.modelstore.", "a stage reads the store; it never installs, "
                                            "swaps or tests models"),
    ("device", "cloud_sync", "the glasses' daemon never depends on the sync process"),
    ("device", "calibration", "nothing on the glasses imports training or evaluation"),
    ("cloud_sync", "calibration", "nothing that syncs imports training or evaluation"),
]
GLASSES_SIDE_SYNC = ("cloud_sync.sync_agent", "cloud_sync.sync_outbox", "cloud_sync.sync_cli",
                     "cloud_sync.update_agent", "cloud_sync.update_offer",
                     "cloud_sync.update_fetch", "cloud_sync.update_install",
                     "cloud_sync.update_policy", "cloud_sync.update_memory",
                     "cloud_sync.update_download", "cloud_sync.mqtt_client", "cloud_sync.batch",
                     "cloud_sync.topics", "cloud_sync.signing", "cloud_sync.update_protocol")


def _all_imports(path: Path) -> set[str]:
    return {name for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            for name in _imported(node) if name.split(".")[0] in PROJECT}


def test_imports_point_one_way():
    sources = _sources(*PROJECT)
    broken = []
    for module, path in sources.items():
        imported = _all_imports(path)
        for importer, forbidden, why in RULES:
            if module == importer or module.startswith(importer + "."):
                allowed = "device.modelstore.store" if importer == "device.stages" else None
                bad = sorted(n for n in imported if n.startswith(forbidden) and
                             not (allowed and n.startswith(allowed)))
                if bad:
                    broken.append(f"{module} imports {bad[0]}: {why}")
        if module in GLASSES_SIDE_SYNC:
            bad = sorted(n for n in imported if n.startswith(("cloud_sync.fleet",
                                                              "cloud_sync.benchmarks")))
            if bad and module != "cloud_sync.sync_cli":   # its bench command defers them
                broken.append(f"{module} (on the glasses) imports {bad[0]}")
    assert broken == []


@pytest.mark.parametrize("entry", ["cloud_sync.sync_cli", "cloud_sync.sync_agent",
                                   "cloud_sync.update_agent"])
def test_the_sync_process_loads_no_vision_code(entry):
    code = (f"import sys, {entry}; "
            "print(sorted(m for m in sys.modules if m in ('cv2', 'PIL') or "
            "m.startswith(('device.live', 'device.stages', 'tflite_runtime', 'ai_edge_litert'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, check=True).stdout.strip()
    assert out == "[]"


def test_the_glasses_reach_evaluation_code_only_by_name_from_the_bench_command():
    """`edgelens bench ocr|recognizer|translator` loads calibration/ modules by name (an import
    the rules above cannot see): only there, only those, and each one exists."""
    from device.commands.bench import EVALUATION_TARGETS
    named = {}
    for module, path in _sources("device").items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    node.value.startswith("calibration."):
                named.setdefault(module, set()).add(node.value)
    assert named == {"device.commands.bench": set(EVALUATION_TARGETS.values())}
    for target in EVALUATION_TARGETS.values():
        assert (ROOT / (target.replace(".", "/") + ".py")).is_file(), target
