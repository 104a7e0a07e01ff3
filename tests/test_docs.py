"""The documentation stays true to the repository: README is a short front door, every relative link in README.md
and docs/*.md points at a file (and heading) that exists, and every `edgefold` command they show uses a real
sub-command and real flags."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250

FENCE = re.compile(r"^\s*```")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`[^`]*`")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose_and_code(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Lines outside fenced code blocks, and the fenced blocks as (info string, lines)."""
    prose: list[str] = []
    blocks: list[tuple[str, list[str]]] = []
    block: list[str] | None = None
    for line in text.splitlines():
        if FENCE.match(line):
            if block is None:
                block = []
                blocks.append((line.strip().strip("`").strip(), block))
            else:
                block = None
            continue
        (prose if block is None else block).append(line)
    return prose, blocks


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: rendered text, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    prose, _ = _prose_and_code(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for line in prose:
        m = HEADING.match(line)
        if not m:
            continue
        base = _slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def _links(path: Path) -> list[str]:
    prose, _ = _prose_and_code(path.read_text(encoding="utf-8"))
    return [m.group(1) for line in prose for m in LINK.finditer(INLINE_CODE.sub("", line))]


def test_docs_pages_exist():
    assert (ROOT / "docs" / "architecture.md").is_file()
    assert len(PAGES) > 2, "docs/ holds the manual, one page per stage"


def test_readme_is_a_short_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines: move detail into docs/"
    text = "\n".join(lines)
    for must in ("make demo", "make test", ".ci/run", "benchmarks/RESULTS.md", "docs/"):
        assert must in text, f"README.md no longer mentions {must}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path):
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target} (no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest})")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.relative_to(ROOT)})")
        elif not dest.resolve().is_relative_to(ROOT):
            broken.append(f"{target} (outside the repository)")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: " + "; ".join(broken)


def _shown_commands(page: Path) -> list[list[str]]:
    """Every `edgefold ...` command line in the page's shell code blocks, continuation lines joined."""
    _, blocks = _prose_and_code(page.read_text(encoding="utf-8"))
    commands = []
    for info, lines in blocks:
        if info not in ("", "bash", "sh", "shell", "console"):
            continue
        joined = "\n".join(lines).replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("#"):
                continue
            try:
                words = shlex.split(line)
            except ValueError:
                continue
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # VAR=value prefix
                words.pop(0)
            if words and words[0] in ("edgefold", ".venv/bin/edgefold"):
                commands.append(words[1:])
    return commands


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_shown_commands_match_the_cli(page: Path):
    from edgefold.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    bad = []
    for words in _shown_commands(page):
        if not words:
            continue
        name = words[0]
        if name not in sub.choices:
            bad.append(f"edgefold {name}: no such command")
            continue
        known = set(sub.choices[name]._option_string_actions)
        for w in words[1:]:
            flag = w.split("=", 1)[0]
            if flag.startswith("--") and flag not in known:
                bad.append(f"edgefold {name} {flag}: no such flag")
    assert not bad, f"{page.relative_to(ROOT)}: " + "; ".join(bad)
