"""The sub-packages of l2v form layers: no import cycle between them (function-level imports count),
and the runtime imports neither `export` nor `quantize`. The graph is read from the source (ast), so a
lazy import inside a function is an edge like any other."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "l2v"


def unit_of(module: str) -> str | None:
    """'l2v.quantize.smooth' -> 'quantize'; top-level modules ('l2v.errors') are their own unit; the
    package itself ('l2v', 'l2v.__init__') and names outside l2v -> None."""
    parts = module.split(".")
    if parts[0] != "l2v" or len(parts) < 2 or parts[1] == "__init__":
        return None
    known = (ROOT / parts[1]).is_dir() or (ROOT / f"{parts[1]}.py").is_file()
    return parts[1] if known else None


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        if path.name == "__main__.py":  # an entry point: nothing imports it
            continue
        rel = path.relative_to(ROOT.parent).with_suffix("")
        src = unit_of(".".join(rel.parts))
        if src is None:
            continue
        graph.setdefault(src, set())
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                dst = unit_of(name)
                if dst is not None and dst != src:
                    graph[src].add(dst)
    return graph


def find_cycle(graph):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if state.get(m) is None and (c := visit(m)):
                return c
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(graph):
        if state.get(n) is None and (c := visit(n)):
            return c
    return None


def test_no_cycle_between_subpackages():
    cycle = find_cycle(edges())
    assert cycle is None, "import cycle between sub-packages: " + " -> ".join(cycle)


def test_runtime_imports_neither_export_nor_quantize():
    g = edges()
    assert not g["runtime"] & {"export", "quantize", "bench", "cli"}, g["runtime"]


def test_lower_layers_stay_low():
    g = edges()
    for leaf in ("errors", "fileio", "numerics", "resources"):
        assert not g.get(leaf, set()) - {"errors"}, (leaf, g.get(leaf))
    assert not g["artifact"] & {"runtime", "export", "quantize", "bench", "cli", "engine"}, g["artifact"]
    assert not g["model"] & {"artifact", "runtime", "export", "quantize", "bench", "cli"}, g["model"]


def test_the_check_sees_function_level_imports(tmp_path):
    """The walker must count an import inside a function (the kind that hid the old cycles)."""
    tree = ast.parse("def f():\n    from l2v.quantize.api import quantize_artifact\n")
    found = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert found == ["l2v.quantize.api"]
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
