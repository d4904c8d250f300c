"""The shape of the code: packages without cycles, services on ports only, no private imports."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "lunos_events"
CLIENT = ROOT / "lunos_client"


def imports(path: Path) -> Iterator[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import in a file, relative ones resolved."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            yield module, [alias.name for alias in node.names]


def unit(module: str) -> str | None:
    """The unit a server module belongs to: its subpackage, or the top-level module itself."""
    parts = module.split(".")
    if parts[0] != "lunos_events" or len(parts) < 2:
        return None
    return parts[1]


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SERVER.rglob("*.py"):
        own = unit(".".join(path.relative_to(ROOT).with_suffix("").parts))
        assert own is not None
        for module, names in imports(path):
            from_root = {unit(f"{module}.{name}") for name in names if module == "lunos_events"}
            targets = {unit(module)} | from_root
            for target in targets:
                if target is not None and target != own and target != "__init__":
                    graph.setdefault(own, set()).add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_server_packages_have_no_import_cycle() -> None:
    assert find_cycle(unit_graph()) is None


def test_the_cycle_check_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_services_depend_on_ports_and_domain_modules_only() -> None:
    reached = unit_graph()["services"]
    assert reached.isdisjoint({"api", "runtime", "webhooks", "worker", "streams", "cli", "serving", "dev"})


def test_http_headers_are_built_in_api_only() -> None:
    for path in SERVER.rglob("*.py"):
        if path.parent.name != "api":
            text = path.read_text()
            for header in ("X-RateLimit-", "Idempotent-Replayed", 'Retry-After":'):
                assert header not in text, f"{path.relative_to(ROOT)} builds {header}"


def test_no_private_module_or_name_of_another_package_is_imported() -> None:
    for package in (SERVER, CLIENT):
        for path in package.rglob("*.py"):
            for module, names in imports(path):
                if module.split(".")[0] in ("lunos_events", "lunos_client", "__future__"):
                    continue
                private = [part for part in module.split(".") if part.startswith("_")]
                private += [name for name in names if name.startswith("_")]
                assert not private, f"{path.relative_to(ROOT)} imports {module} {names}"


def test_the_client_library_does_not_import_the_server() -> None:
    for path in CLIENT.rglob("*.py"):
        for module, _ in imports(path):
            assert module.split(".")[0] != "lunos_events", f"{path.relative_to(ROOT)} imports {module}"
