"""Issue 7 item 11: the apps import at the top of their modules. An import
appended halfway down a module (``# noqa: E402``) hides the module's real
dependencies and any cycle among them; only exchange/asgi.py needs one
(Django must be set up before Channels' auth middleware is imported)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_module_of_the_apps_imports_halfway_down():
    allowed = {ROOT / "exchange" / "asgi.py"}
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for app in ("accounts", "clearing", "exchange", "market")
        for path in sorted((ROOT / app).rglob("*.py"))
        if path not in allowed and "migrations" not in path.parts
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if "noqa: E402" in line
    ]

    assert offenders == []
