"""The documents a user clones explain the repository from inside it: every relative link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]

#: The Markdown a reader follows: the README, the contributor's guide and docs/.
DOCUMENTS = sorted(
    [REPOSITORY / "README.md", REPOSITORY / "CONTRIBUTING.md", *(REPOSITORY / "docs").glob("*.md")]
)

#: [text](target) and ![alt](target), and reference definitions "[label]: target".
INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
#: A path to a Markdown file in a code span, `like/this.md`: a pointer a reader follows just the same
#: (a bare name, `regimes.md`, is a file some command writes, not a pointer).
NAMED = re.compile(r"`([^`\s]*/[^`\s]*\.md)`")


def without_code_blocks(text: str) -> str:
    """The text outside ``` fences (commands and code there are not links)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def relative_links(text: str) -> list[str]:
    prose = without_code_blocks(text)
    targets = [*INLINE.findall(prose), *REFERENCE.findall(prose), *NAMED.findall(prose)]
    return [
        t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.IGNORECASE) and not t.startswith("#")
    ]


def test_the_link_finder_sees_links_references_and_named_files() -> None:
    text = (
        'See [the map](docs/architecture.md#layers) and ![a figure](img/x.png "title"), '
        "not [a site](https://example.org) or [a section](#tests); `../shared/DESIGN.md` too.\n"
        "[ref]: CONTRIBUTING.md\n"
        "```\n[in code](not/a/link.md)\n```\n"
    )
    assert relative_links(text) == [
        "docs/architecture.md#layers",
        "img/x.png",
        "CONTRIBUTING.md",
        "../shared/DESIGN.md",
    ]


def test_the_documents_exist() -> None:
    names = {path.relative_to(REPOSITORY).as_posix() for path in DOCUMENTS}
    assert {"README.md", "CONTRIBUTING.md", "docs/architecture.md"} <= names


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(REPOSITORY).as_posix())
def test_every_relative_link_resolves_inside_the_repository(document: Path) -> None:
    broken = []
    for link in relative_links(document.read_text(encoding="utf-8")):
        target = (document.parent / link.split("#", 1)[0]).resolve()
        if not target.is_relative_to(REPOSITORY):
            broken.append(f"{link} (outside the repository: a reader who clones it does not have it)")
        elif not target.exists():
            broken.append(f"{link} (no such file)")
    assert not broken, f"{document.relative_to(REPOSITORY)}: {broken}"
