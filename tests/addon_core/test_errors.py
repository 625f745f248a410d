"""One exception tree: every error the add-on defines is a ScenecastError, and every one names a fix."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import addon.core
from addon.core import backend_process, client, errors, remote_job
from addon.core.errors import ScenecastError

ROOT = Path(__file__).resolve().parents[2]
ADDON = ROOT / "addon"
EXCEPTION_BASES = {"Exception", "ValueError", "RuntimeError", "OSError", "TypeError", "KeyError", "LookupError"}


def _exception_classes() -> dict[str, list[tuple[str, list[str]]]]:
    """Class name -> [(file, base names)] for every class in addon/ (AST: blender/ needs no bpy here)."""
    classes: dict[str, list[tuple[str, list[str]]]] = {}
    for path in sorted(ADDON.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "?"
                         for b in node.bases]
                classes.setdefault(node.name, []).append((str(path.relative_to(ROOT)), bases))
    return classes


def _is_exception(name: str, classes: dict, seen: frozenset = frozenset()) -> bool:
    if name in EXCEPTION_BASES or name == "ScenecastError":
        return True
    if name in seen or name not in classes:
        return False
    return any(_is_exception(b, classes, seen | {name}) for _, bases in classes[name] for b in bases)


def _reaches_scenecast_error(name: str, classes: dict, seen: frozenset = frozenset()) -> bool:
    if name == "ScenecastError":
        return True
    if name in seen or name not in classes:
        return False
    return all(any(_reaches_scenecast_error(b, classes, seen | {name}) for b in bases) for _, bases in classes[name])


def test_every_exception_class_in_the_addon_is_a_scenecast_error():
    classes = _exception_classes()
    exceptions = sorted(n for n in classes if n != "ScenecastError" and _is_exception(n, classes))
    assert {"JobFailed", "BackendProcessError", "PassError", "ProjectionError", "ExrError"} <= set(exceptions)
    outside = [f"{n} ({where})" for n in exceptions for where, _ in classes[n]
               if not _reaches_scenecast_error(n, classes)]
    assert outside == [], "exceptions outside the ScenecastError tree"


def test_each_exception_name_is_defined_once():
    classes = _exception_classes()
    twice = {n: [w for w, _ in defs] for n, defs in classes.items() if len(defs) > 1 and _is_exception(n, classes)}
    assert twice == {}


def test_one_job_failed_everywhere_and_cancelled_is_a_kind_of_it():
    assert remote_job.JobFailed is client.JobFailed is errors.JobFailed
    assert backend_process.BackendProcessError is errors.BackendProcessError
    cancelled = errors.JobCancelled("job j1 was cancelled", job_id="j1")
    assert isinstance(cancelled, errors.JobFailed) and cancelled.status == "cancelled" and cancelled.job_id == "j1"
    with pytest.raises(errors.JobFailed) as info:  # one except clause sees every job without a result
        client.raise_for_job({"id": "j2", "status": "cancelled"})
    assert info.value.status == "cancelled" and info.value.job_id == "j2"


for _module in pkgutil.iter_modules(addon.core.__path__):  # every core error class, not only those imported above
    importlib.import_module(f"addon.core.{_module.name}")


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


@pytest.mark.parametrize("cls", [c for c in _subclasses(ScenecastError) if c.__module__.startswith("addon.core")],
                         ids=lambda c: c.__name__)
def test_every_core_error_names_a_fix_even_when_its_raiser_gives_none(cls):
    error = cls(1006) if cls is errors.ConnectionClosed else cls("something went wrong")
    assert error.fix.strip(), f"{cls.__name__} raised without a fix tells the user nothing to do"
    assert error.fix in str(error)


def test_every_raise_of_the_base_class_passes_a_fix():
    bare = []
    for path in sorted(ADDON.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                func = node.exc.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                given = len(node.exc.args) + sum(k.arg == "fix" for k in node.exc.keywords)
                if name == "ScenecastError" and given < 2:
                    bare.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert bare == []


def _backend_default_port() -> int:
    tree = ast.parse((ROOT / "backend" / "cli.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "DEFAULT_PORT" for t in node.targets):
            return int(ast.literal_eval(node.value))
    raise AssertionError("backend/cli.py has no DEFAULT_PORT")


def test_messages_and_docs_name_the_backends_real_default_port():
    port = _backend_default_port()
    assert backend_process.url_port(backend_process.DEFAULT_URL) == port
    wrong = []
    files = [*ADDON.rglob("*.py"), *(ROOT / "docs").glob("*.md"), ROOT / "README.md"]
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for found in re.findall(r"(?:127\.0\.0\.1|localhost|\[::1\]):(\d{2,5})\b", line):
                if int(found) != port:
                    wrong.append(f"{path.relative_to(ROOT)}:{number}: {found}")
    assert wrong == []
