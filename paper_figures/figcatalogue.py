"""The report's item catalogue: ``items.yaml`` (every figure and table of both papers, in report order) loaded
and checked.

    papers, items = load()            # {paper key: citation}, [item dict, ...]

Each item is a plain dict with the keys of ``items.yaml`` (``REQUIRED`` + any of ``OPTIONAL``). Anything
malformed raises :class:`CatalogueError` with one line naming the file, the item and the key.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

ITEMS_FILE = Path(__file__).resolve().parent / "items.yaml"

REQUIRED = ("id", "paper", "label", "notebook", "files", "title", "caption")
OPTIONAL = ("paper_values", "status", "why")
#: the one status an item may declare (the report shows its ``why`` instead of files)
NOT_YET = "not yet available"
#: what a notebook may write for an item: figures as PNG + SVG, tables as CSV + Markdown
FILE_TYPES = (".png", ".svg", ".csv", ".md")
#: ids and paper keys go into HTML anchors and headings unescaped
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


class CatalogueError(Exception):
    """A malformed items.yaml: one line naming the item and the key."""


def load(path: Path = ITEMS_FILE, notebooks: Iterable[str] | None = None) -> tuple[dict[str, str], list[dict]]:
    """``(papers, items)`` of ``path``; ``notebooks``: the names an item's ``notebook`` may take."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise CatalogueError(f"{path}: cannot read: {' '.join(str(e).split())}") from None
    if not isinstance(doc, dict) or set(doc) != {"papers", "items"}:
        raise CatalogueError(f"{path}: expected exactly the keys 'papers' and 'items' at the top")
    papers = _papers(path, doc["papers"])
    if not isinstance(doc["items"], list) or not doc["items"]:
        raise CatalogueError(f"{path}: 'items' must be a non-empty list")
    known = set(notebooks) if notebooks is not None else None
    seen: set[str] = set()
    for n, it in enumerate(doc["items"], 1):
        _check_item(path, n, it, papers, known)
        if it["id"] in seen:
            raise CatalogueError(f"{path}: item {n} ({it['id']}): key 'id': duplicate id")
        seen.add(it["id"])
    return papers, doc["items"]


def _papers(path: Path, papers) -> dict[str, str]:
    if not isinstance(papers, dict) or not papers:
        raise CatalogueError(f"{path}: 'papers' must map each paper key to its citation")
    for key, cite in papers.items():
        if not (isinstance(key, str) and NAME.fullmatch(key)) or not (isinstance(cite, str) and cite.strip()):
            raise CatalogueError(f"{path}: papers: key {key!r}: expected a name (letters, digits, '-') "
                                 f"and a non-empty citation")
    return papers


def _check_item(path: Path, n: int, it, papers: dict, notebooks: set | None) -> None:
    if not isinstance(it, dict):
        raise CatalogueError(f"{path}: item {n}: expected a mapping of {', '.join(REQUIRED)}")
    where = f"{path}: item {n} ({it.get('id', '?')})"

    def bad(key: str, why: str) -> CatalogueError:
        return CatalogueError(f"{where}: key '{key}': {why}")

    for key in it:
        if key not in REQUIRED + OPTIONAL:
            raise bad(key, f"unknown key (allowed: {', '.join(REQUIRED + OPTIONAL)})")
    for key in REQUIRED:
        if key not in it:
            raise bad(key, "missing")
    for key in ("id", "paper", "label", "title", "caption") + tuple(k for k in OPTIONAL if k in it):
        if not isinstance(it[key], str) or not it[key].strip():
            raise bad(key, f"expected a non-empty string, got {it[key]!r}")
    if not NAME.fullmatch(it["id"]):
        raise bad("id", "expected letters, digits and '-' (it is the item's HTML anchor)")
    if it["paper"] not in papers:
        raise bad("paper", f"{it['paper']!r} is not one of papers: {', '.join(papers)}")
    if it.get("status", NOT_YET) != NOT_YET:
        raise bad("status", f"the only status an item may declare is {NOT_YET!r}")
    if "status" in it and "why" not in it:
        raise bad("why", f"missing (an item {NOT_YET!r} says why)")
    nb = it["notebook"]
    if nb is None and "status" not in it:
        raise bad("notebook", f"missing (only an item {NOT_YET!r} has none)")
    if nb is not None and not (isinstance(nb, str) and nb.strip()):
        raise bad("notebook", f"expected a notebook name, got {nb!r}")
    if nb is not None and notebooks is not None and nb not in notebooks:
        raise bad("notebook", f"{nb!r} is not one of {', '.join(sorted(notebooks))}")
    files = it["files"]
    if not isinstance(files, list) or not (files or "status" in it):
        raise bad("files", "expected a non-empty list of file names")
    for f in files:
        if not isinstance(f, str) or "/" in f or not f.endswith(FILE_TYPES):
            raise bad("files", f"{f!r}: expected a file name ending in {', '.join(FILE_TYPES)}")
        if f.endswith(".png") and f[:-4] + ".svg" not in files:
            raise bad("files", f"{f!r} has no {f[:-4]}.svg beside it (the report links the SVG)")
