"""core/ runs inside Blender's bundled Python and under `bl_ext.user_default.scenecast.core`:
it may import only numpy and the standard library, and refers to its siblings relatively."""

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "addon" / "core"
MODULES = sorted(p.stem for p in CORE.glob("*.py") if p.stem != "__init__")


def test_core_imports_only_numpy_and_the_standard_library():
    script = (
        "import sys\n"
        "sys.modules['bpy'] = None  # importing bpy now fails\n"
        "before = set(sys.modules)\n"
        f"for name in {MODULES!r}:\n"
        "    __import__('addon.core.' + name)\n"
        "tops = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "allowed = set(sys.stdlib_module_names) | {'numpy', 'addon', 'cython_runtime'}  # numpy's Cython parts\n"
        "print(sorted(t for t in tops if t not in allowed and not t.startswith('_')))\n"
    )
    root = CORE.parents[1]
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=root, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"core imported non-stdlib modules: {out.stdout}"


def test_core_refers_to_itself_relatively():
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert not (node.module or "").startswith("addon"), f"{path.name}: absolute import of {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] not in ("addon", "bpy", "mathutils"), f"{path.name}: {alias.name}"


def _sibling_imports(path: Path) -> set[str]:
    """The core modules ``path`` imports, anywhere in the file (lazy imports inside functions count:
    a function-level import hides a circle, it does not break it)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:  # from . import a, b
                found.update(alias.name for alias in node.names)
    return found & set(MODULES)


def test_core_modules_import_each_other_without_a_circle():
    graph = {name: _sibling_imports(CORE / f"{name}.py") for name in MODULES}
    circles = []

    def visit(name: str, path: list[str]) -> None:
        for child in sorted(graph[name]):
            if child in path:
                circles.append(" -> ".join(path[path.index(child):] + [child]))
            elif child not in done:
                visit(child, path + [child])
        done.add(name)

    done: set[str] = set()
    for name in MODULES:
        if name not in done:
            visit(name, [name])
    assert circles == []
