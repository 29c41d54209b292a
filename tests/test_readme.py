"""The README is a front door that works: short, its links lead somewhere, its commands exist.

Fast and static: no command is run. Checks README.md's length, every relative link (and its
#anchor, when it points into a Markdown file) in README.md and docs/*.md, every `make` target and
every `python -m repro.…` module named in README.md's code (fenced blocks and inline code).
"""
from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 200
# Files a link may name before they exist (none today).
EXPECTED_ABSENT: set[Path] = set()

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
MAKE_TARGET = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.-]*(?:[ \t]+[A-Za-z0-9_][A-Za-z0-9_.-]*)*)[ \t]*:(?!=)", re.M)
MODULE = re.compile(r"(?:^|\s)-m[ \t]+(repro(?:\.[A-Za-z_]\w*)*)")


def _prose(text: str) -> str:
    """Markdown without fenced blocks and inline code (links there are not links)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _code(text: str) -> list[str]:
    """The command lines of fenced blocks and the inline code spans, shell comments removed and
    backslash continuations joined."""
    out = []
    for block in FENCE.finditer(text):
        body = block.group(0).split("\n", 1)[1].rsplit("\n", 1)[0]
        out += body.replace("\\\n", " ").splitlines()
    out += [m.group(2) for m in INLINE_CODE.finditer(FENCE.sub("", text))]
    return [re.sub(r"(^|\s)#.*$", "", line).strip() for line in out]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def _anchors(md: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for h in HEADING.finditer(FENCE.sub("", md.read_text(encoding="utf-8"))):
        s = _slug(h.group(1))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def _links(md: Path) -> list[str]:
    prose = _prose(md.read_text(encoding="utf-8"))
    return [m.group(1) for m in INLINE_LINK.finditer(prose)] + [m.group(1) for m in REF_LINK.finditer(prose)]


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return {t for m in MAKE_TARGET.finditer(text) for t in m.group(1).split()}


def _make_commands(lines: list[str]) -> list[list[str]]:
    """The argument lists of every `make` invocation in ``lines`` (split at shell separators)."""
    out = []
    for line in lines:
        for part in re.split(r"&&|\|\||;|\|", line):
            try:
                words = shlex.split(part)
            except ValueError:  # an unbalanced quote: an inline span cut out of a longer command
                words = part.split()
            if "make" in words:
                out.append(words[words.index("make") + 1:])
    return out


def test_readme_is_at_most_200_lines():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; the front door keeps to {MAX_README_LINES}: move detail to docs/"


def test_readme_shows_the_report_picture():
    picture = Path("docs/img/report.png")
    assert picture in {Path(link) for link in _links(README)}, f"README.md no longer links the report's picture ({picture})"
    assert (ROOT / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{picture} is not a PNG"


@pytest.mark.parametrize("md", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file(md):
    broken = []
    for link in _links(md):
        if re.match(r"^[a-z][a-z0-9+.-]*:", link, re.I):  # http:, https:, mailto:, ...
            continue
        path, _, anchor = link.partition("#")
        target = (md.parent / path).resolve() if path else md
        rel = Path(target).relative_to(ROOT) if Path(target).is_relative_to(ROOT) else Path(target)
        if rel in EXPECTED_ABSENT:
            continue
        if not target.exists():
            broken.append(f"{link}: no file {rel}")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {rel}")
    assert not broken, f"{md.name}: broken links:\n" + "\n".join(broken)


def test_the_expected_absent_files_are_the_only_exception():
    assert all(not p.is_absolute() and ".." not in p.parts for p in EXPECTED_ABSENT)


def test_every_make_target_in_the_readme_exists():
    targets = _make_targets()
    assert {"repro", "test"} <= targets, f"the quick start's targets are missing from the Makefile: {sorted(targets)}"
    commands = _make_commands(_code(README.read_text(encoding="utf-8")))
    assert any(c[:1] == ["repro"] for c in commands) and any(c[:1] == ["test"] for c in commands), \
        "README.md no longer shows `make repro` and `make test`"
    unknown = sorted({w for c in commands for w in c if "=" not in w and not w.startswith("-") and w not in targets})
    assert not unknown, f"README.md runs make targets the Makefile does not have: {unknown}; targets: {sorted(targets)}"


def test_every_python_module_in_the_readme_is_runnable():
    modules = sorted({m.group(1) for line in _code(README.read_text(encoding="utf-8")) for m in MODULE.finditer(line)})
    missing = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None:
            missing.append(f"{name}: no such module")
        elif spec.submodule_search_locations is not None and importlib.util.find_spec(f"{name}.__main__") is None:
            missing.append(f"{name}: a package without __main__, `python -m {name}` cannot run it")
    assert not missing, "README.md names modules that `python -m` cannot run:\n" + "\n".join(missing)
