"""Count function-local imports and import cycles in the catdb package.

Usage (from the repository root)::

    python tools/count_imports.py            # summary: counts and cycles
    python tools/count_imports.py --list     # also every function-local import (file:line module)

A *function-local* import is an ``import``/``from ... import`` statement that is not at module
level (inside a ``def``, ``class`` body or a function's ``try``/``if``); imports at module level
inside ``try``/``if`` (optional extras) or ``if TYPE_CHECKING:`` count as module level.
``catdb/migrations/`` is excluded (alembic loads those files by path).

Cycles: the graph has an edge ``a -> b`` for every import of catdb module ``b`` by catdb module
``a`` (module-level *and* function-local, so a cycle hidden by a lazy import still counts);
``from pkg import name`` counts as an import of ``pkg.name`` when that is a module, else of
``pkg``.  An edge to a package's ``__init__`` is ignored when the importer lives inside that
package (Python imports a package before its modules, not a cycle anyone wrote).  The strongly
connected components with more than one module are reported (Tarjan's algorithm).
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "catdb"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def source_files() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "migrations" not in p.relative_to(PKG).parts)


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _visit(node, in_func, mod, is_pkg, path, modules, local, targets):
    for child in ast.iter_child_nodes(node):
        nested = in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            if in_func:
                local.append((path.relative_to(ROOT), child.lineno, ast.unparse(child)))
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            else:
                base = _resolve(mod, is_pkg, child)
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in child.names]
            for name in names:
                while name and name not in modules:  # import a.b.c where a.b.c is a name in a.b
                    name = name.rpartition(".")[0]
                if name and name != mod and not mod.startswith(name + "."):
                    targets.add(name)
        _visit(child, nested, mod, is_pkg, path, modules, local, targets)


def scan(modules: set[str]):
    """Return (local imports [(file, line, text)], edges {mod: set(mod)})."""
    local, edges = [], {}
    for path in source_files():
        mod = module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        _visit(tree, False, mod, path.name == "__init__.py", path, modules, local, edges.setdefault(mod, set()))
    return local, edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return sorted(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="list every function-local import")
    args = ap.parse_args(argv)
    modules = {module_name(p) for p in source_files()}
    local, edges = scan(modules)
    if args.list:
        for path, line, text in local:
            print(f"{path}:{line}: {text}")
    comps = cycles(edges)
    print(f"function-local imports: {len(local)} in {len({p for p, _, _ in local})} files "
          f"({len(modules)} modules, catdb/migrations excluded)")
    print(f"import cycles: {len(comps)}")
    for comp in comps:
        print("  " + " <-> ".join(comp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
