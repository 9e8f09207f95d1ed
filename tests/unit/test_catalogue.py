"""The lab catalogue: lab.yaml validation with file:line: field messages, and id lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from labs import yamlpos
from labs.catalogue import (
    Catalogue,
    LabDefinitionError,
    LabsError,
    UnknownLab,
    default_catalogue,
    load_lab,
)

VALID = """\
id: "01"
slug: demo
title: A demo lab
chapter: chapters/01-demo.md
summary: One paragraph.
objectives:
  - Learn things
cluster:
  workers: 2
  cni: [kindnet, calico]
  addons: []
  needs: [services]
namespaces: [lab01]
setup: [setup/]
starter: starter/
solution: solution/
checks: checks/
tasks:
  - id: first
    title: First task
    description: Do the first thing.
    checks: [{name: test_a, points: 2}]
    hints: ["look", "look harder"]
    # the first task's check is worth 2 points; the others 1 each
  - id: second
    title: Second task
    description: Do the second thing.
    checks: [test_b, test_c]
"""

CHECKS = """\
import pytest


def test_a():
    pass


def test_b(cluster):
    pass


async def test_c():
    pass


def helper():
    pass
"""

FILE = "labs/01-demo/lab.yaml"


def make_lab(root: Path, name: str = "01-demo", text: str = VALID, checks: str = CHECKS) -> Path:
    folder = root / "labs" / name
    for sub in ("setup", "starter", "solution", "checks"):
        (folder / sub).mkdir(parents=True)
    (folder / "setup" / "ns.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: lab01\n"
    )
    (folder / "starter" / "app.yaml").write_text("kind: Pod\n")
    (folder / "solution" / "app.yaml").write_text("kind: Pod\nspec: {}\n")
    (folder / "checks" / "test_demo.py").write_text(checks)
    (folder / "lab.yaml").write_text(text)
    return folder


def line(text: str, needle: str) -> int:
    """1-based number of the first line of ``text`` containing ``needle``."""
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


def problems(tmp_path: Path, text: str, **kwargs: str) -> list[str]:
    """Load a lab made from ``text`` (cwd = tmp_path) and return its problem lines."""
    folder = make_lab(tmp_path, text=text, **kwargs)
    with pytest.raises(LabDefinitionError) as caught:
        load_lab(folder)
    assert str(caught.value).splitlines() == [str(p) for p in caught.value.problems]
    return str(caught.value).splitlines()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # problems show paths relative to the working directory


# ---- a valid lab ---------------------------------------------------------------------------


def test_valid_lab_loads_with_its_properties(tmp_path: Path) -> None:
    folder = make_lab(tmp_path)
    lab = load_lab(folder)
    assert lab.folder == folder.absolute()
    assert lab.name == "01-demo"
    assert lab.setup_paths() == [folder / "setup/"]
    assert lab.setup_files() == [folder / "setup" / "ns.yaml"]
    assert lab.starter_dir == folder / "starter"
    assert lab.solution_dir == folder / "solution"
    assert lab.checks_dir == folder / "checks"
    assert lab.all_checks == {"first": ["test_a"], "second": ["test_b", "test_c"]}
    assert lab.total_points() == 4  # the second task's two checks default to 1 point each
    assert lab.check_names() == ["test_a", "test_b", "test_c"]
    assert lab.hidden_checks == []
    assert lab.tasks[0].hints == ["look", "look harder"]
    assert lab.chapter_path is None  # no docs dir given


def test_task_for_check_accepts_names_and_pytest_node_ids(tmp_path: Path) -> None:
    lab = load_lab(make_lab(tmp_path))
    second = lab.task_for_check("test_b")
    assert second is not None and second.id == "second"
    by_node = lab.task_for_check("checks/test_demo.py::test_c[calico]")
    assert by_node is not None and by_node.id == "second"
    assert lab.task_for_check("test_nope") is None
    first = lab.task("first")
    assert first is not None and first.worth == 2


def test_profile_uses_the_first_cni_and_refuses_unsupported_ones(tmp_path: Path) -> None:
    lab = load_lab(make_lab(tmp_path))
    assert (lab.profile().workers, lab.profile().cni, lab.profile().addons) == (2, "kindnet", ())
    assert lab.profile("calico").cni == "calico"
    with pytest.raises(LabsError, match="supports CNI kindnet, calico, not 'cilium'"):
        lab.profile("cilium")


def test_chapter_must_exist_when_the_docs_dir_is_known(tmp_path: Path) -> None:
    folder = make_lab(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    with pytest.raises(LabDefinitionError) as caught:
        load_lab(folder, docs)
    assert str(caught.value) == (
        f"{FILE}:{line(VALID, 'chapter:')}: chapter: no such docs page: "
        f"{docs / 'chapters/01-demo.md'}"
    )
    (docs / "chapters").mkdir()
    (docs / "chapters" / "01-demo.md").write_text("# Demo\n")
    assert load_lab(folder, docs).chapter_path == docs / "chapters" / "01-demo.md"


# ---- shape errors (pydantic), with file:line: field ------------------------------------------


def test_unknown_field_suggests_the_right_name(tmp_path: Path) -> None:
    text = VALID.replace("title: A demo lab", "titel: A demo lab")
    assert problems(tmp_path, text) == [
        f"{FILE}:1: title: required field is missing",
        f"{FILE}:3: titel: unknown field 'titel' (did you mean 'title'?)",
    ]


def test_unknown_field_in_a_task_and_in_the_cluster(tmp_path: Path) -> None:
    text = VALID.replace("    # the first task's check is worth 2 points; the others 1 each",
                         "    pionts: 2").replace("  workers: 2", "  wrokers: 2")
    assert problems(tmp_path, text) == [
        f"{FILE}:9: cluster.wrokers: unknown field 'wrokers' (did you mean 'workers'?)",
        f"{FILE}:{line(text, 'pionts')}: tasks[0].pionts: unknown field 'pionts' "
        "(did you mean 'points'?)",
    ]


def test_unknown_field_without_a_close_match_lists_the_known_ones(tmp_path: Path) -> None:
    text = VALID.replace("  addons: []", "  addons: []\n  colour: red")
    assert problems(tmp_path, text) == [
        f"{FILE}:12: cluster.colour: unknown field 'colour' "
        "(known fields: addons, cni, needs, workers)"
    ]


def test_an_unquoted_id_is_a_number_and_the_message_says_to_quote_it(tmp_path: Path) -> None:
    text = VALID.replace('id: "01"', "id: 01")
    assert problems(tmp_path, text) == [
        f'{FILE}:1: id: expected text, got the number 1 (put it in quotes: "01")'
    ]


def test_missing_task_field_points_at_the_task(tmp_path: Path) -> None:
    text = VALID.replace("    title: First task\n", "")
    assert problems(tmp_path, text) == [
        f"{FILE}:{line(text, '- id: first')}: tasks[0].title: required field is missing"
    ]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  workers: 2", "  workers: 9",
         "9: cluster.workers: Input should be less than or equal to 5 (got 9)"),
        ("  cni: [kindnet, calico]", "  cni: [kindnet, weave]",
         "10: cluster.cni[1]: unknown CNI 'weave' (supported: kindnet, flannel, calico, cilium)"),
        ("  cni: [kindnet, calico]", "  cni: []", "10: cluster.cni: must not be empty"),
        ("  addons: []", "  addons: [istio, metallb]",
         "11: cluster.addons[1]: unknown add-on 'metallb' (supported: ingress, gateway, "
         "load-balancer, istio)"),
        ("  needs: [services]", "  needs: [dns, nat]",
         "12: cluster.needs[1]: unknown capability 'nat' (supported: network_policy, services, "
         "dns, ingress, load_balancer, gateway, istio)"),
        ("objectives:\n  - Learn things", "objectives: []", "6: objectives: must not be empty"),
        ("slug: demo", "slug: Demo_Lab",
         "2: slug: expected lowercase words joined by '-', got 'Demo_Lab'"),
        ('id: "01"', 'id: "1"',
         "1: id: expected two digits and an optional letter, e.g. \"01b\", got '1'"),
        ("namespaces: [lab01]", "namespaces: [Lab_01]",
         "13: namespaces[0]: expected a DNS label (a-z, 0-9, '-'), got 'Lab_01'"),
        ("{name: test_a,", "{name: check_a,",
         "22: tasks[0].checks[0].name: expected the name of a test function in checks/ "
         "(test_...), got 'check_a'"),
        ("points: 2}", "points: -1}",
         "22: tasks[0].checks[0].points: Input should be greater than or equal to 0 (got -1)"),
        ("    checks: [test_b, test_c]", "    checks: [test_b, {name: test_c, hidden: sometimes}]",
         "28: tasks[1].checks[1].hidden: expected true or false, got the text 'sometimes'"),
        ("summary: One paragraph.", "summary: '  '", "5: summary: must not be empty"),
        ("summary: One paragraph.", "summary: [a, b]", "5: summary: expected text, got a list"),
        ("cluster:\n", "cluster: kind\nx:\n",
         "8: cluster: expected a mapping, got the text 'kind'"),
        ("starter: starter/", "starter: ../outside/",
         "15: starter: expected a relative path inside the lab folder (no '..'), "
         "got '../outside/'"),
        ("solution: solution/", "solution: /etc/",
         "16: solution: expected a relative path inside the lab folder (no '..'), got '/etc/'"),
    ],
)
def test_shape_errors_name_line_field_and_expectation(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    text = VALID.replace(old, new)
    assert text != VALID
    found = problems(tmp_path, text)
    assert f"{FILE}:{expected}" in found, found


def test_all_shape_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = VALID.replace("  workers: 2", "  workers: 0").replace("points: 2}", "points: x}")
    found = problems(tmp_path, text)
    assert [p.split(": ")[1] for p in found] == ["cluster.workers", "tasks[0].checks[0].points"]


def test_points_on_a_task_say_where_points_go_now(tmp_path: Path) -> None:
    text = VALID.replace("    # the first task's check is worth 2 points; the others 1 each",
                         "    points: 2")
    assert problems(tmp_path, text) == [
        f"{FILE}:{line(text, '    points: 2')}: tasks[0].points: points belong to checks, not "
        "tasks: write each check as {name: test_..., points: N} (a bare name is worth 1 point)"
    ]


def test_hidden_checks_count_only_when_grading(tmp_path: Path) -> None:
    text = VALID.replace("    checks: [test_b, test_c]",
                         "    checks:\n      - test_b\n      - {name: test_c, points: 3, hidden: true}")
    lab = load_lab(make_lab(tmp_path, text=text))
    assert lab.hidden_checks == ["test_c"]
    assert lab.check_names() == ["test_a", "test_b"]
    assert lab.check_names(grading=True) == ["test_a", "test_b", "test_c"]
    assert (lab.total_points(), lab.total_points(grading=True)) == (3, 6)
    assert lab.all_checks["second"] == ["test_b", "test_c"]
    ref = lab.check_ref("test_c")
    assert ref is not None and ref.hidden and ref.points == 3
    second = lab.task("second")
    assert second is not None and second.worth == 1  # what `lab show` promises: visible only


def test_a_task_of_hidden_checks_only_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("    checks: [test_b, test_c]",
                         "    checks: [{name: test_b, hidden: true}, {name: test_c, hidden: true}]")
    assert problems(tmp_path, text) == [
        f"{FILE}:28: tasks[1].checks: every check of this task is hidden, so `lab check` would "
        "grade none of it: make at least one check visible"
    ]


# ---- YAML errors -------------------------------------------------------------------------------


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    text = VALID.replace("slug: demo", "slug: [demo")
    [only] = problems(tmp_path, text)
    assert only.startswith(f"{FILE}:3: invalid YAML: ")


def test_duplicate_keys_are_refused_not_silently_merged(tmp_path: Path) -> None:
    text = VALID + "title: Another title\n"
    assert problems(tmp_path, text) == [
        f"{FILE}:{len(text.splitlines())}: title: duplicate key 'title' "
        "(each field may appear once)"
    ]


@pytest.mark.parametrize(
    ("text", "got"), [("", "an empty file"), ("- a\n- b\n", "a list")]
)
def test_the_top_level_must_be_a_mapping(tmp_path: Path, text: str, got: str) -> None:
    assert problems(tmp_path, text) == [
        f"{FILE}:1: expected a mapping of fields (id, slug, title, ...), got {got}"
    ]


def test_missing_lab_yaml(tmp_path: Path) -> None:
    folder = make_lab(tmp_path)
    (folder / "lab.yaml").unlink()
    with pytest.raises(LabDefinitionError, match=r"^labs/01-demo/lab.yaml: missing lab.yaml$"):
        load_lab(folder)


# ---- cross-checks: checks/, paths, folder, namespaces -----------------------------------------


def test_unknown_check_names_the_functions_found(tmp_path: Path) -> None:
    text = VALID.replace("checks: [test_b, test_c]", "checks: [test_b, test_foo]")
    assert problems(tmp_path, text) == [
        f"{FILE}:28: tasks[1].checks[1]: no test function 'test_foo' in checks/ "
        "(found: test_a, test_b, test_c)",
        f"{FILE}:18: tasks: test function 'test_c' in checks/test_demo.py is not listed by any "
        "task, so it would never count",
    ]


def test_a_check_grades_one_task_only(tmp_path: Path) -> None:
    text = VALID.replace("checks: [test_b, test_c]", "checks: [test_b, test_c, test_a]")
    assert problems(tmp_path, text) == [
        f"{FILE}:28: tasks[1].checks[2]: 'test_a' already grades task 'first'; "
        "a check grades one task"
    ]


def test_check_files_are_parsed_not_imported(tmp_path: Path) -> None:
    checks = CHECKS + "\nraise SystemExit('imported!')\n"
    assert load_lab(make_lab(tmp_path, checks=checks)).all_checks["first"] == ["test_a"]


def test_syntax_error_in_a_check_file_names_that_file_and_line(tmp_path: Path) -> None:
    checks = "def test_a():\n    pass\n\ndef test_b(:\n"
    found = problems(tmp_path, VALID, checks=checks)
    assert found[0].startswith("labs/01-demo/checks/test_demo.py:4: invalid Python: ")


def test_a_test_name_defined_in_two_check_files_is_ambiguous(tmp_path: Path) -> None:
    folder = make_lab(tmp_path)
    (folder / "checks" / "test_more.py").write_text("\n\ndef test_b():\n    pass\n")
    with pytest.raises(LabDefinitionError) as caught:
        load_lab(folder)
    assert str(caught.value) == (
        "labs/01-demo/checks/test_more.py:3: test function 'test_b' is also defined in "
        "checks/test_demo.py; tasks name checks, so names must be unique"
    )


def test_missing_and_wrong_kind_paths(tmp_path: Path) -> None:
    text = VALID.replace("solution: solution/", "solution: nothere/").replace(
        "setup: [setup/]", "setup: [setup/, extra.yaml]"
    ).replace("starter: starter/", "starter: setup/ns.yaml")
    assert problems(tmp_path, text) == [
        f"{FILE}:14: setup[1]: no such file or directory 'extra.yaml' in the lab folder",
        f"{FILE}:15: starter: expected a directory, but 'setup/ns.yaml' is a file",
        f"{FILE}:16: solution: no such directory 'nothere/' in the lab folder",
    ]


def test_symlink_escaping_the_lab_folder_is_refused(tmp_path: Path) -> None:
    folder = make_lab(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (folder / "outside").symlink_to(outside)
    (folder / "lab.yaml").write_text(VALID.replace("starter: starter/", "starter: outside/"))
    with pytest.raises(LabDefinitionError) as caught:
        load_lab(folder)
    assert str(caught.value) == (
        f"{FILE}:15: starter: 'outside/' leads outside the lab folder (through a symlink)"
    )


def test_id_and_slug_must_match_the_folder(tmp_path: Path) -> None:
    folder = make_lab(tmp_path, name="02-other")
    with pytest.raises(LabDefinitionError) as caught:
        load_lab(folder)
    assert str(caught.value).splitlines() == [
        "labs/02-other/lab.yaml:1: id: expected '02' (the folder is named '02-other'), got '01'",
        "labs/02-other/lab.yaml:2: slug: expected 'other' (the folder is named '02-other'), "
        "got 'demo'",
    ]


def test_folder_must_be_named_nn_slug(tmp_path: Path) -> None:
    folder = make_lab(tmp_path, name="demo")
    with pytest.raises(LabDefinitionError) as caught:
        load_lab(folder)
    assert str(caught.value) == (
        "labs/demo/lab.yaml: the lab folder 'demo' should be named '01-demo' (NN-slug)"
    )


def test_namespaces_must_be_created_by_setup(tmp_path: Path) -> None:
    text = VALID.replace("namespaces: [lab01]", "namespaces: [lab01, lab01b]")
    assert problems(tmp_path, text) == [
        f"{FILE}:13: namespaces[1]: namespace 'lab01b' is not created by any setup manifest "
        "(add a Namespace document to a setup file)"
    ]


def test_duplicates_in_lists(tmp_path: Path) -> None:
    text = VALID.replace("namespaces: [lab01]", "namespaces: [lab01, lab01]").replace(
        "  - id: second", "  - id: first"
    )
    assert problems(tmp_path, text) == [
        f"{FILE}:13: namespaces[1]: 'lab01' is listed twice",
        f"{FILE}:25: tasks[1].id: 'first' is listed twice",
    ]


# ---- yamlpos -----------------------------------------------------------------------------------


def test_line_of_walks_mappings_and_sequences() -> None:
    tree, data = yamlpos.parse(VALID)
    assert data["tasks"][1]["checks"] == ["test_b", "test_c"]
    assert yamlpos.line_of(tree, ("tasks", 1, "checks", 1)) == 28
    assert yamlpos.line_of(tree, ("tasks",)) == 18
    assert yamlpos.line_of(tree, ("tasks", 0)) == 19
    assert yamlpos.line_of(tree, ()) == 1
    assert yamlpos.line_of(tree, ("tasks", 7)) is None
    assert yamlpos.line_of(tree, ("tasks", 7, "id"), nearest=True) == 18
    assert yamlpos.line_of(None, ("id",)) is None
    assert yamlpos.format_path(("tasks", 0, "checks", 1)) == "tasks[0].checks[1]"
    assert yamlpos.format_path(()) == "(top level)"


# ---- the catalogue -----------------------------------------------------------------------------


def add_second_lab(tmp_path: Path) -> None:
    text = VALID.replace('id: "01"', 'id: "02b"').replace("slug: demo", "slug: other-lab")
    make_lab(tmp_path, name="02b-other-lab", text=text.replace("A demo lab", "Another lab"))


def test_catalogue_lists_labs_sorted_and_finds_them_by_any_name(tmp_path: Path) -> None:
    add_second_lab(tmp_path)
    make_lab(tmp_path)
    (tmp_path / "labs" / "cli").mkdir()  # not a lab folder: ignored
    catalogue = Catalogue(tmp_path / "labs")
    assert [lab.id for lab in catalogue.labs()] == ["01", "02b"]
    for wanted in ("01", "1", "01-demo", "demo", " Demo ", "labs/01-demo/"):
        assert catalogue.get(wanted).id == "01", wanted
    for wanted in ("02b", "2b", "other-lab", "02b-other-lab"):
        assert catalogue.get(wanted).id == "02b", wanted


def test_unknown_lab_lists_what_exists(tmp_path: Path) -> None:
    add_second_lab(tmp_path)
    make_lab(tmp_path)
    with pytest.raises(UnknownLab) as caught:
        Catalogue(tmp_path / "labs").get("7")
    assert str(caught.value) == "no lab '7'; available labs:\n  01  A demo lab\n  02b Another lab"
    assert caught.value.available == [("01", "A demo lab"), ("02b", "Another lab")]
    with pytest.raises(UnknownLab, match=r"^no lab given \(and none started\); available labs:"):
        Catalogue(tmp_path / "labs").get("")
    with pytest.raises(UnknownLab, match="the catalogue has no labs"):
        Catalogue(tmp_path / "nothing").get("01")


def test_one_broken_lab_does_not_hide_the_others(tmp_path: Path) -> None:
    make_lab(tmp_path)
    folder = tmp_path / "labs" / "02b-other-lab"
    add_second_lab(tmp_path)
    (folder / "lab.yaml").write_text((folder / "lab.yaml").read_text() + "oops: 1\n")
    catalogue = Catalogue(tmp_path / "labs")
    assert catalogue.get("01").title == "A demo lab"
    with pytest.raises(LabDefinitionError, match=r"02b-other-lab/lab\.yaml:29: oops: unknown"):
        catalogue.labs()
    with pytest.raises(UnknownLab) as caught:
        catalogue.get("9")
    assert "02b 02b-other-lab (its lab.yaml has errors)" in str(caught.value)


def test_two_folders_with_one_id_are_an_error(tmp_path: Path) -> None:
    make_lab(tmp_path)
    make_lab(tmp_path, name="01-again")
    with pytest.raises(LabDefinitionError, match="'01' is also used by 01-again"):
        Catalogue(tmp_path / "labs").labs()


def test_the_real_catalogue_loads() -> None:
    catalogue = default_catalogue()
    if not (catalogue.root / "01-pod-networking" / "lab.yaml").is_file():
        pytest.skip("labs/01-pod-networking/lab.yaml is not written yet")
    labs = catalogue.labs()
    assert labs and [lab.id for lab in labs] == sorted(lab.id for lab in labs)
    lab = catalogue.get("1")
    assert lab.name == "01-pod-networking"
    assert lab.total_points() >= len(lab.tasks) > 0
    assert all(lab.task_for_check(c) is not None for cs in lab.all_checks.values() for c in cs)
