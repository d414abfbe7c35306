"""The layers, enforced: ``core/`` is pure; ``cli/`` and ``web/`` reach the store only
through ``services/`` (and the store handle itself, ``store.sql``).

Read from the source with ``ast``, imports inside functions included, so a lazy
import cannot slip past. Each exception below names a file and a module and
says whose work removes it; an exception that is no longer needed fails too,
so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mailbeacon

SRC = Path(mailbeacon.__file__).parent

# core/: bytes and records in, records out (docs: shared STYLE, principle 1).
CORE_FORBIDDEN = (
    "socket", "ssl", "asyncio", "smtplib", "imaplib", "http.client", "urllib.request",
    "sqlalchemy", "psycopg", "psycopg2", "sqlite3",
    "starlette", "httptools", "uvloop", "granian", "aiosmtpd", "httpx",
    "mailbeacon.store", "mailbeacon.web", "mailbeacon.smtp", "mailbeacon.inbound",
    "mailbeacon.services", "mailbeacon.cli", "mailbeacon.judging",
)
# cli/ and web/: no SQL of their own, and no store module but the handle.
EDGE_FORBIDDEN = ("sqlalchemy", "psycopg", "psycopg2", "sqlite3", "mailbeacon.store")
EDGE_ALLOWED = (
    "mailbeacon.store.sql",  # SqlStore and open_store: the handle services are given
    "mailbeacon.store.writer",  # GroupCommitter: what the tracking server records through
)
# (file under src/mailbeacon, module): still imported, and whose files they are.
EXCEPTIONS = {
    ("cli/rebuild.py", "mailbeacon.store.rollups"): "F2 (rebuild)",
}


# Constants defined once (in the module named); (file, name) still defined elsewhere, and whose.
ONE_DEFINITION = {"HIT_KINDS": "core/events.py"}
DUPLICATES = {
    ("store/copies.py", "HIT_KINDS"): "F1",
    ("store/rollups.py", "HIT_KINDS"): "F2",
    ("core/verdicts/model.py", "HIT_KINDS"): "the verdict engine's owner (strings, not kinds)",
}


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, ``from a import b`` counted as ``a`` and ``a.b``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def modules(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


def name(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def edge_violations(path: Path) -> set[str]:
    # The package alone says nothing: ``from mailbeacon.store import x`` is judged by ``x``.
    return {m for m in imported(path) - {"mailbeacon.store"}
            if any(under(m, f) for f in EDGE_FORBIDDEN)
            and not any(under(m, a) for a in EDGE_ALLOWED)}


@pytest.mark.parametrize("path", modules("core"), ids=name)
def test_core_imports_no_io(path: Path) -> None:
    bad = sorted(m for m in imported(path) if any(under(m, f) for f in CORE_FORBIDDEN))
    assert bad == [], f"{name(path)} is in core/ but imports {', '.join(bad)}"


@pytest.mark.parametrize("path", modules("cli") + modules("web"), ids=name)
def test_cli_and_web_reach_the_store_through_services(path: Path) -> None:
    bad = sorted(m for m in edge_violations(path) if (name(path), m) not in EXCEPTIONS)
    assert bad == [], f"{name(path)} imports {', '.join(bad)}: call a services/ function"


@pytest.mark.parametrize("where", sorted(EXCEPTIONS), ids="{0[0]}:{0[1]}".format)
def test_every_exception_is_still_needed(where: tuple[str, str]) -> None:
    path, module = where
    assert (SRC / path).exists() and module in edge_violations(SRC / path), (
        f"{path} no longer imports {module}: remove it from EXCEPTIONS")


def defined(path: Path) -> set[str]:
    """Names ``path`` assigns at module level."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def test_each_constant_has_one_definition() -> None:
    found = {(name(p), c) for p in modules(".") for c in defined(p) & set(ONE_DEFINITION)}
    expected = {(home, c) for c, home in ONE_DEFINITION.items()}
    assert found - expected - set(DUPLICATES) == set(), "import it from its one definition"
    assert set(DUPLICATES) - found == set(), "a duplicate is gone: remove it from DUPLICATES"
    assert expected <= found


def test_the_rules_see_what_they_forbid(tmp_path: Path) -> None:
    """The checker itself: a lazy import, a ``from`` import and an allowed one."""
    sample = tmp_path / "sample.py"
    sample.write_text("from mailbeacon.store.sql import SqlStore\n"
                      "from mailbeacon.store import schema\n"
                      "def f():\n    import sqlalchemy.orm\n", encoding="utf-8")
    assert edge_violations(sample) == {"mailbeacon.store.schema", "sqlalchemy.orm"}
