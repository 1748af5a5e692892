"""The docs stay true: quoted figures are verbatim, links land, the layout lists every file, make help and clean."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from local import results

ROOT = Path(__file__).resolve().parent.parent
PAGES = results.pages(ROOT)
RESULTS = sorted((ROOT / "docs" / "results").glob("*.md"))
# Headings the README had before its reference moved to docs/: links to them must still land.
OLD_README_ANCHORS = [
    "run-it",
    "soak-make-soak",
    "the-two-commands",
    "how-it-works",
    "the-stored-item",
    "configuration",
    "metrics",
    "logs",
    "deploy-and-operate",
    "deploy",
    "build",
    "trying-the-function-locally",
    "what-make-validate-checks",
    "least-privilege",
    "operations-runbook",
    "inspecting-the-dlq",
    "moving-messages-back",
    "why-a-redriven-message-is-not-saved-twice",
    "cost-per-million-messages",
    "benchmark-make-bench",
    "layout",
    "tests",
]
# Created by the Makefile's targets (and the tools they run); `make clean` must remove each.
ARTEFACTS = [
    ".venv/bin/python",
    ".venv-sam/bin/sam",
    ".venv-checkov/bin/checkov",
    ".venv-ministack/bin/python",
    "build/consumer.zip",
    "build/template.cfn.json",
    ".aws-sam/build/ConsumerFunction/handler.py",
    "dist/x.whl",
    ".coverage",
    ".mypy_cache/3.11/x.json",
    ".ruff_cache/x",
    ".pytest_cache/x",
    ".hypothesis/examples/x",
    "src/consumer/__pycache__/config.cpython-311.pyc",
    "tests/__pycache__/conftest.cpython-311.pyc",
]


def _outside_code(text: str) -> str:
    """The page without its fenced code blocks (whose `#` lines are shell comments, not headings)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = _outside_code(page.read_text(encoding="utf-8"))
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE):
        slug, number = _slug(heading), 1
        while slug in anchors:  # GitHub numbers repeated headings
            slug, number = f"{_slug(heading)}-{number}", number + 1
        anchors.add(slug)
    return anchors | set(re.findall(r'<a id="([^"]+)"></a>', text))


def _links(page: Path) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", _outside_code(page.read_text(encoding="utf-8")))


def test_every_quoted_result_is_the_results_file_verbatim() -> None:
    # Given the pages and the results files the commands wrote
    quoted = {(page.name, source): body for page in PAGES for source, body in results.included(page.read_text("utf-8"))}

    # Then every include block is its file, byte for byte, and every results file is quoted somewhere
    for (page, source), body in quoted.items():
        assert (ROOT / source).exists(), f"{page} includes {source}, which does not exist"
        assert body == (ROOT / source).read_text(encoding="utf-8"), f"{page}: run the command that writes {source}"
    assert {ROOT / source for _, source in quoted} == set(RESULTS)


@pytest.mark.parametrize("path", RESULTS, ids=lambda path: path.name)
def test_every_results_file_names_its_command_machine_and_date(path: Path) -> None:
    # Given a results file; Then it opens with the command that wrote it, the machine and the date
    text = path.read_text(encoding="utf-8")
    assert re.search(r"^- \*\*command\*\*: `\.venv/bin/python -m \S+.*`$", text, flags=re.MULTILINE)
    assert re.search(r"^- \*\*machine\*\*: \d+ CPUs .*Python 3\.\d+", text, flags=re.MULTILINE)
    assert re.search(r"^- \*\*date\*\*: \d{4}-\d\d-\d\d \d\d:\d\d UTC", text, flags=re.MULTILINE)


def test_writing_a_result_refreshes_the_pages_that_quote_it(tmp_path: Path) -> None:
    # Given a page quoting an old version of a results file
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "x.md").write_text("new figures\n", encoding="utf-8")
    page = tmp_path / "docs" / "x.md"
    page.write_text("a\n<!-- include docs/results/x.md -->\nold figures\n<!-- end include -->\nb\n", encoding="utf-8")

    # When the quotes are refreshed
    changed = results.refresh_includes(tmp_path)

    # Then the page quotes the new file and nothing else moved
    assert changed == [page]
    assert page.read_text() == "a\n<!-- include docs/results/x.md -->\nnew figures\n<!-- end include -->\nb\n"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_lands_on_a_file_and_heading(page: Path) -> None:
    # Given the relative links of a page
    for link in _links(page):
        if re.match(r"[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page

        # Then the file exists, and the anchor is one of its headings
        assert path.exists(), f"{page.name}: {link}"
        if anchor:
            assert anchor in _anchors(path), f"{page.name}: {link} has no heading #{anchor}"


def test_the_readme_keeps_the_anchors_people_link_to() -> None:
    # Given the anchors the README had before its reference moved to docs/; Then each still lands in it
    missing = [anchor for anchor in OLD_README_ANCHORS if anchor not in _anchors(ROOT / "README.md")]
    assert missing == []


def _layout_paths() -> set[str]:
    """Paths in the README's Layout block: each line is `<indent>name  description`, folders end in /."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^## Layout\n\n```\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    assert block, "README.md has no Layout block"
    paths: set[str] = set()
    folders: list[str] = []
    for line in block.group(1).splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name = line.split()[0]
        folders = folders[:depth]
        path = "".join(folders) + name
        paths.add(path.rstrip("/"))
        if name.endswith("/"):
            folders.append(name)
    return paths


def test_the_layout_lists_every_file_and_nothing_else() -> None:
    # Given the files of the repository (tracked, or new and not ignored)
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout: the file list comes from git")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    files = {path for path in listed if (ROOT / path).exists()}

    # Then the README's layout names each of them, and names nothing that is not there
    layout = _layout_paths()
    assert sorted(files - layout) == []
    assert sorted(path for path in layout if not (ROOT / path).exists()) == []


def _phony_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return {target for line in re.findall(r"^\.PHONY:(.*)$", text, flags=re.MULTILINE) for target in line.split()}


def test_make_help_lists_every_target() -> None:
    # When `make help` runs
    done = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True)
    listed = set(re.findall(r"^make (\S+)", done.stdout, flags=re.MULTILINE))

    # Then it lists every target of the Makefile, with the ones a newcomer needs among them
    assert _phony_targets() <= listed
    assert {"run", "test", "check", "build", "validate", "bench", "soak", "clean"} <= listed


def test_make_clean_removes_every_artefact_and_keeps_the_sources(tmp_path: Path) -> None:
    # Given a checkout with every artefact the targets create, and a developer's own .env
    for name in ("Makefile", "requirements.txt", "requirements_test.txt", "src/consumer/config.py", ".env"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((ROOT / name).read_text() if (ROOT / name).exists() else "X=1\n")
    shutil.copytree(ROOT / "infra", tmp_path / "infra")
    for artefact in ARTEFACTS:
        (tmp_path / artefact).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / artefact).write_text("x")

    # When `make clean` runs
    subprocess.run(["make", "-s", "clean"], cwd=tmp_path, capture_output=True, text=True, check=True)

    # Then no artefact is left, and the sources and .env are
    assert [artefact for artefact in ARTEFACTS if (tmp_path / artefact).exists()] == []
    top_level = {artefact.split("/")[0] for artefact in ARTEFACTS} - {"src", "tests"}
    assert sorted(name for name in top_level if (tmp_path / name).exists()) == []
    assert not list(tmp_path.rglob("__pycache__"))
    assert (tmp_path / "src/consumer/config.py").exists()
    assert (tmp_path / ".env").exists()
    assert (tmp_path / "infra/Makefile").exists()
