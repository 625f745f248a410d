"""The add-on's layers import one way: ui/ → api.py → features/ → blender/ → core/, and nothing in a circle.

Read from the source (AST), so it needs no Blender: every ``import`` and ``from … import`` of every
module under addon/, those inside functions included (a lazy import hides a circle, it does not break
it). A module may import its own layer and the layers below; ``addon/__init__.py`` (register) sits
above them all.
"""

from __future__ import annotations

import ast
from pathlib import Path

ADDON = Path(__file__).resolve().parents[2] / "addon"
#: Lower number = lower layer.
LAYERS = {"core": 0, "blender": 1, "features": 2, "api": 3, "ui": 4}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ADDON.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(name: str) -> bool:
    return (ADDON.parent / name.replace(".", "/") / "__init__.py").is_file()


def exists(name: str) -> bool:
    return is_package(name) or (ADDON.parent / (name.replace(".", "/") + ".py")).is_file()


def imports(path: Path) -> set[str]:
    """The addon modules ``path`` imports (a package's ``from pkg import sub`` names the submodule)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "addon")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").split(".")[0] == "addon":
                target = node.module or ""
            else:
                continue
            subs = [f"{target}.{a.name}" for a in node.names if exists(f"{target}.{a.name}")]
            found.update(subs or [target])
            if len(subs) < len(node.names):
                found.add(target)
    return {m for m in found if exists(m) and m != name}


def layer(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None  # "addon" itself: above every layer


GRAPH = {module_name(p): imports(p) for p in sorted(ADDON.rglob("*.py"))}


def test_the_graph_sees_the_imports_it_should():
    assert "addon.core.remote_job" in GRAPH["addon.features.base"]
    assert "addon.features.generate" in GRAPH["addon.features.stylize"]
    assert "addon.ui.job_operator" in GRAPH["addon.ui.operators.generate"]
    assert "addon.core.view_sampler" in GRAPH["addon.core.texture_blend"]  # a lazy import counts


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for module, targets in GRAPH.items():
        own = layer(module)
        if own is None:
            continue
        for target in targets:
            theirs = layer(target)
            if theirs is None or theirs > own:
                upward.append(f"{module} imports {target}")
    assert upward == []


def cycles() -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in GRAPH:
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    assert cycles() == []
