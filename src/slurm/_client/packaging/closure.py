"""Which of the user's local modules a call needs on the cluster.

A module is *local* when its source lives outside the standard library and
every ``site-packages`` (a ``helpers.py`` beside the script, a ``stats/``
package in the project directory, a notebook's sibling module). The SDK
itself is never local. Local code is shipped by *top-level name*: a module is
one file, a package is its whole directory, data files (JSON, YAML, CSV...)
included, so ``Path(__file__).parent / "table.json"`` works on the cluster.

The closure starts from the modules the call refers to (the task function's
module; for a function travelling by value, such as one defined in
``__main__`` or a notebook cell, the modules its code names or imports; the
modules of its arguments' types) and follows every ``import`` in the local
sources (read with :mod:`ast`, so imports inside functions count too) and the
modules a local module actually holds once imported.
"""

from __future__ import annotations

import ast
import contextlib
import dis
import functools
import hashlib
import importlib.machinery
import logging
import os
import site
import sys
import sysconfig
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from slurm._wire.record import record

__all__ = [
    "Closure",
    "LocalUnit",
    "call_roots",
    "code_names",
    "find_closure",
    "site_dirs",
    "system_dirs",
]

logger = logging.getLogger(__name__)

#: Top-level names never shipped as source (the SDK travels in its own way).
NEVER_SHIPPED = frozenset({"slurm", "__main__", "__mp_main__"})

_SKIP_DIRS = frozenset({"__pycache__", "build", "dist", "node_modules", ".ipynb_checkpoints"})
_SKIP_SUFFIXES = (".pyc", ".pyo", ".swp")
_SOURCE_SUFFIXES = (".py",)
_SCAN_LIMIT = 200  # items of a container argument looked at for their types' modules


@record(frozen=True)
class LocalUnit:
    """One top-level name shipped as source: a module file or a package directory."""

    name: str
    path: Path
    is_package: bool

    def files(self) -> Iterator[tuple[str, Path]]:
        """``(name in the shipped tree, file)`` for every file that travels."""
        if not self.is_package:
            yield f"{self.name}{self.path.suffix}", self.path  # the import name, not a link's
            return
        for directory, dirnames, filenames in os.walk(self.path):
            dirnames[:] = sorted(d for d in dirnames if _keep_dir(directory, d))
            for filename in sorted(filenames):
                if filename.startswith(".") or filename.endswith(_SKIP_SUFFIXES):
                    continue
                full = Path(directory, filename)
                yield f"{self.name}/{full.relative_to(self.path).as_posix()}", full

    def sources(self) -> Iterator[Path]:
        """The Python source files of the unit."""
        for _, path in self.files():
            if path.suffix in _SOURCE_SUFFIXES:
                yield path


@record(frozen=True)
class Closure:
    """The local units a call needs, sorted by name, and the installed modules they use.

    ``installed`` are the top-level names that live in a ``site-packages``
    directory (numpy, pandas...) and that the call refers to or the local units
    import, counting only libraries imported in this process already or
    imported by the call's own code: the job's environment needs their
    distributions.
    """

    units: tuple[LocalUnit, ...]
    installed: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(unit.name for unit in self.units)

    def files(self) -> list[tuple[str, Path]]:
        """Every file to ship, as ``(relative name, path)``, sorted by name."""
        return sorted(item for unit in self.units for item in unit.files())

    def digest(self) -> str:
        """SHA-256 over every shipped file's relative name and content, as they were when
        first asked (:func:`find_closure` makes a new closure once any of them changed)."""
        found: str | None = self.__dict__.get("_digest")
        if found is None:
            digest = hashlib.sha256(b"slurm-sdk source closure 1\n")
            for relative, path in self.files():
                digest.update(f"{relative}\0{_file_sha256(path)}\n".encode())
            found = digest.hexdigest()
            object.__setattr__(self, "_digest", found)
        return found


def _keep_dir(parent: str, name: str) -> bool:
    if name.startswith(".") or name in _SKIP_DIRS or name.endswith(".egg-info"):
        return False
    return not os.path.isfile(os.path.join(parent, name, "pyvenv.cfg"))


_digests: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    found = _digests.get(key)
    if found is None:
        with open(path, "rb") as f:
            found = _digests[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return found


def _real_dirs(paths: Iterable[str | None]) -> tuple[Path, ...]:
    return tuple(sorted({Path(os.path.realpath(p)) for p in paths if p}))


@functools.cache
def site_dirs() -> tuple[Path, ...]:
    """Where installed distributions live: every ``site-packages`` of this interpreter."""
    schemes = sysconfig.get_paths()
    paths = [schemes.get("purelib"), schemes.get("platlib"), site.getusersitepackages()]
    with contextlib.suppress(AttributeError):  # some embedded interpreters lack it
        paths += site.getsitepackages()
    return _real_dirs(paths)


@functools.cache
def system_dirs() -> tuple[Path, ...]:
    """Directories whose modules are never local: the standard library, site-packages, the SDK."""
    schemes = sysconfig.get_paths()
    sdk = str(Path(__file__).resolve().parents[2])  # .../slurm/_client/packaging/closure.py
    paths = [schemes.get("stdlib"), schemes.get("platstdlib"), sdk]
    return _real_dirs([*paths, *map(str, site_dirs())])


def _under(path: Path, dirs: Sequence[Path]) -> bool:
    text = str(path)
    for d in dirs:
        top = str(d)
        if text == top or text.startswith(top.rstrip(os.sep) + os.sep):
            return True
    return False


def _unit_of_module(name: str, module: types.ModuleType, dirs: Sequence[Path]) -> LocalUnit | None:
    locations = list(getattr(module, "__path__", None) or [])
    file = getattr(module, "__file__", None)
    if locations:
        folder = Path(os.path.realpath(locations[0]))
        return None if _under(folder, dirs) else LocalUnit(name, folder, True)
    if not file or not file.endswith(_SOURCE_SUFFIXES):
        return None  # built-in, frozen, an extension module, or defined in memory
    path = Path(os.path.realpath(file))
    return None if _under(path, dirs) else LocalUnit(name, path, False)


def _unit_of_spec(name: str, spec: importlib.machinery.ModuleSpec, dirs: Sequence[Path]) -> Any:
    locations = list(spec.submodule_search_locations or [])
    if locations and spec.origin in (None, "namespace"):
        # Any directory on the path would do as a namespace package (a data folder
        # named like a missing module): only one that was really imported is shipped.
        return None
    if locations:
        folder = Path(os.path.realpath(locations[0]))
        return None if _under(folder, dirs) else LocalUnit(name, folder, True)
    origin = spec.origin
    if not origin or not origin.endswith(_SOURCE_SUFFIXES):
        return None
    path = Path(os.path.realpath(origin))
    return None if _under(path, dirs) else LocalUnit(name, path, False)


class _Resolver:
    """Top-level name -> local unit (or ``None``), from imported modules, then the search path."""

    def __init__(
        self,
        modules: Mapping[str, types.ModuleType],
        search_path: Sequence[str],
        dirs: Sequence[Path],
        installed_dirs: Sequence[Path],
    ) -> None:
        self.modules = modules
        self.search_path = [os.path.abspath(p or os.curdir) for p in search_path]
        self.dirs = dirs
        self.installed_dirs = installed_dirs
        self.cache: dict[str, LocalUnit | None] = {}
        self.installed: set[str] = set()
        self.roots: set[str] = set()

    def _note_installed(self, name: str, location: str | None) -> None:
        if location and _under(Path(os.path.realpath(location)), self.installed_dirs):
            self.installed.add(name)

    def unit(self, name: str) -> LocalUnit | None:
        if name in self.cache:
            return self.cache[name]
        found: LocalUnit | None = None
        if name in NEVER_SHIPPED or name in sys.builtin_module_names:
            found = None
        elif name in self.modules:
            module = self.modules[name]
            found = _unit_of_module(name, module, self.dirs)
            if found is None:
                paths = list(getattr(module, "__path__", None) or [])
                location = getattr(module, "__file__", None) or next(iter(paths), None)
                self._note_installed(name, location)
        else:
            try:
                spec = importlib.machinery.PathFinder.find_spec(name, self.search_path)
            except (ImportError, ValueError):
                spec = None
            found = _unit_of_spec(name, spec, self.dirs) if spec is not None else None
            # A library no code here has imported yet counts only when the call's own
            # code imports it: one imported lazily elsewhere in a local module may be
            # heavy and never needed.
            if spec is not None and found is None and name in self.roots:
                locations = list(spec.submodule_search_locations or [])
                self._note_installed(name, spec.origin or next(iter(locations), None))
        self.cache[name] = found
        return found


_imports_cache: dict[tuple[str, int, int], frozenset[str]] = {}


def imported_names(path: Path) -> frozenset[str]:
    """Top-level names every absolute ``import`` in a source file refers to (cached)."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    found = _imports_cache.get(key)
    if found is not None:
        return found
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError) as exc:
        logger.debug("not scanning %s for imports: %s", path, exc)
        tree = ast.Module(body=[], type_ignores=[])
    names: set[str] = set()
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".", 1)[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".", 1)[0])
    found = _imports_cache[key] = frozenset(names)
    return found


#: The fields that hold statements (an ``import`` is always one): bodies of functions,
#: classes, ``if``/``for``/``while``/``with``/``try``, their handlers and ``match`` cases.
_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(tree: ast.Module) -> list[ast.AST]:
    """Every statement of ``tree``, at any depth, without walking its expressions (most of
    its nodes): what ``ast.walk`` would find imports among, for a fifth of the visits."""
    found: list[ast.AST] = []
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        found.append(node)
        for name in _BODIES:
            children = getattr(node, name, None)
            if type(children) is list:  # a lambda's body is one expression, not a list
                stack.extend(children)
    return found


def _held_names(module: types.ModuleType) -> set[str]:
    """Top-level names of the modules (and objects' modules) an imported module holds."""
    names: set[str] = set()
    for value in list(vars(module).values()):
        names.update(_names_of_object(value))
    return names


def _names_of_object(value: Any) -> set[str]:
    try:
        if isinstance(value, types.ModuleType):
            return {value.__name__.split(".", 1)[0]}
        owner = getattr(value, "__module__", None) if callable(value) else None
        if not isinstance(owner, str):
            owner = type(value).__module__
    except Exception:  # a lazy proxy or another object that fails on attribute access
        return set()
    return {owner.split(".", 1)[0]} if isinstance(owner, str) else set()


def _code_imports(code: types.CodeType) -> set[str]:
    names: set[str] = set()
    for instruction in dis.get_instructions(code):
        if instruction.opname == "IMPORT_NAME" and isinstance(instruction.argval, str):
            names.add(instruction.argval.split(".", 1)[0])
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_imports(const)
    return names


def code_names(code: types.CodeType) -> set[str]:
    """Every global or attribute name a code object (and the code nested in it) uses."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= code_names(const)
    return names


def _function_roots(fn: Any) -> set[str]:
    """Modules a function travelling by value refers to: its globals, closure and imports."""
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType):
        return _names_of_object(fn)
    roots = _code_imports(code)
    scope = getattr(fn, "__globals__", {})
    for name in code_names(code):
        if name in scope:
            roots |= _names_of_object(scope[name])
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            roots |= _names_of_object(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    for default in getattr(fn, "__defaults__", None) or ():
        roots |= _names_of_object(default)
    return roots


def _value_roots(value: Any, depth: int = 0) -> set[str]:
    """Modules of an argument's type (and, a little way down, of its items' types)."""
    roots = _names_of_object(value)
    if depth >= 2:
        return roots
    items: Iterable[Any] = ()
    if isinstance(value, dict):
        items = list(value.values())[:_SCAN_LIMIT]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)[:_SCAN_LIMIT]
    for item in items:
        roots |= _value_roots(item, depth + 1)
    return roots


def call_roots(fn: Any, module: str | None, arguments: Iterable[Any] = ()) -> set[str]:
    """Top-level names a call refers to.

    Args:
        fn: The task's function.
        module: Its module when it travels by reference (``None``: by value).
        arguments: The call's argument values (positional and keyword).
    """
    if module:
        code = getattr(fn, "__code__", None)
        imports = _code_imports(code) if isinstance(code, types.CodeType) else set()
        roots = {module.split(".", 1)[0], *imports}
    else:
        roots = _function_roots(fn)
    for value in arguments:
        roots |= _value_roots(value)
    return roots


def find_closure(
    roots: Iterable[str],
    *,
    exclude: Iterable[str] = (),
    modules: Mapping[str, types.ModuleType] | None = None,
    search_path: Sequence[str] | None = None,
    dirs: Sequence[Path] | None = None,
    installed_dirs: Sequence[Path] | None = None,
) -> Closure:
    """The local units ``roots`` need, following imports through local sources.

    Args:
        roots: Top-level module names to start from (non-local ones are dropped).
        exclude: Top-level names that reach the cluster another way (a project's wheel).
        modules: Imported modules to resolve names with first (default ``sys.modules``).
        search_path: Where to look for names not imported yet (default ``sys.path``).
        dirs: Directories that are never local (default :func:`system_dirs`).
        installed_dirs: Where installed distributions live (default :func:`site_dirs`).
    """
    by_value = _pickled_by_value()
    defaults = modules is None and search_path is None and dirs is None and installed_dirs is None
    if not defaults:
        return _find(roots, exclude, by_value, modules, search_path, dirs, installed_dirs)
    key = (frozenset(roots), frozenset(exclude), frozenset(by_value), tuple(sys.path))
    stamp = _process_stamp()
    cached = _closures.get(key)
    if cached is not None and cached[1] == stamp and _unchanged(cached[2]):
        return cached[0]
    closure = _find(roots, exclude, by_value, None, None, None, None)
    if len(_closures) >= _CACHED_CLOSURES:
        _closures.clear()
    _closures[key] = (closure, stamp, _file_stamps(closure))
    return closure


#: find_closure's answers with the defaults, by its inputs; each is used again only while
#: the process imported nothing new and no file or directory it read changed (a notebook
#: user edits ``helpers.py`` between two calls: the next call sees the edit).
_CACHED_CLOSURES = 256
_closures: dict[Any, tuple[Closure, Any, tuple[tuple[str, int, int], ...]]] = {}


def _process_stamp() -> tuple[int, tuple[tuple[str, int, int], ...]]:
    """What a closure read besides its units' files: how many modules are imported, and
    the local directories on ``sys.path`` (a new module file there changes their mtime)."""
    return len(sys.modules), _stamps(_local_path_dirs(tuple(sys.path), os.getcwd()))


@functools.lru_cache(maxsize=16)
def _local_path_dirs(path: tuple[str, ...], cwd: str) -> tuple[str, ...]:
    """The entries of ``sys.path`` (as it is, from ``cwd``) outside :func:`system_dirs`."""
    dirs = system_dirs()
    local = dict.fromkeys(os.path.normpath(os.path.join(cwd, p)) for p in path)
    return tuple(p for p in local if not _under(Path(p), dirs))


def _stamps(paths: Iterable[str]) -> tuple[tuple[str, int, int], ...]:
    found = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            found.append((path, -1, -1))
        else:
            found.append((path, stat.st_mtime_ns, stat.st_size))
    return tuple(found)


def _file_stamps(closure: Closure) -> tuple[tuple[str, int, int], ...]:
    """Every file of the closure's units (what its digest reads) and every directory of
    its packages (a file added or removed), with mtime and size."""
    paths = [str(path) for _, path in closure.files()]
    for unit in closure.units:
        if unit.is_package:
            for directory, dirnames, _ in os.walk(unit.path):
                dirnames[:] = sorted(d for d in dirnames if _keep_dir(directory, d))
                paths.append(directory)
    return _stamps(paths)


def _unchanged(stamps: tuple[tuple[str, int, int], ...]) -> bool:
    return _stamps(path for path, _, _ in stamps) == stamps


def _find(
    roots: Iterable[str],
    exclude: Iterable[str],
    by_value: set[str],
    modules: Mapping[str, types.ModuleType] | None,
    search_path: Sequence[str] | None,
    dirs: Sequence[Path] | None,
    installed_dirs: Sequence[Path] | None,
) -> Closure:
    skipped = set(exclude)
    resolver = _Resolver(
        sys.modules if modules is None else modules,
        sys.path if search_path is None else search_path,
        system_dirs() if dirs is None else dirs,
        site_dirs() if installed_dirs is None else installed_dirs,
    )
    found: dict[str, LocalUnit] = {}
    pending = [name for name in roots if name]
    resolver.roots = set(pending)
    while pending:
        name = pending.pop()
        if name in found or name in skipped or name in by_value:
            continue
        unit = resolver.unit(name)
        if unit is None:
            continue
        found[name] = unit
        for source in unit.sources():
            pending.extend(imported_names(source))
        for module_name, module in list(resolver.modules.items()):
            if module_name == name or module_name.startswith(name + "."):
                pending.extend(_held_names(module))
    installed = sorted(resolver.installed - skipped - NEVER_SHIPPED)
    return Closure(tuple(found[name] for name in sorted(found)), tuple(installed))


def _pickled_by_value() -> set[str]:
    """Modules registered with ``cloudpickle.register_pickle_by_value`` (in the payload)."""
    try:
        import cloudpickle

        return {name.split(".", 1)[0] for name in cloudpickle.list_registry_pickle_by_value()}
    except (ImportError, AttributeError):
        return set()
