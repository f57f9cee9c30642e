"""Reading a manifest file, no database: exact decimals, duplicate keys refused, every failure located."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from agora.manifest.loader import parse_manifest
from agora.manifest.parse import ManifestError, Problem, parse_text, read_file

DEMO_PATH = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"


def only_problem(text: str, name: str = "m.yaml") -> str:
    with pytest.raises(ManifestError) as info:
        parse_text(text, name)
    assert len(info.value.problems) == 1
    return str(info.value.problems[0])


def read_problem(path: Path) -> str:
    with pytest.raises(ManifestError) as info:
        read_file(path)
    assert len(info.value.problems) == 1
    return str(info.value.problems[0])


def end_of(text: str) -> str:
    """`line:col` (1-based) of the end of `text`: where a truncated file stops."""
    last_line = text.rsplit("\n", 1)[-1]
    return f"{text.count(chr(10)) + 1}:{len(last_line) + 1}"


# --- decimals -----------------------------------------------------------------------------------------------


def test_yaml_floats_become_exact_decimals() -> None:
    data = parse_text(
        "rate: 0.125\nprice: 0.1\nhourly: 0.10\nbig: 1_000.5\nlong: 12345678901234567890.123456789\n", "m.yaml"
    )
    assert data == {
        "rate": Decimal("0.125"),
        "price": Decimal("0.1"),
        "hourly": Decimal("0.10"),
        "big": Decimal("1000.5"),
        "long": Decimal("12345678901234567890.123456789"),
    }
    assert all(type(v) is Decimal for v in data.values())
    # Through a float, 0.1 would be 0.1000000000000000055511151231257827…
    assert str(data["price"]) == "0.1" and str(data["hourly"]) == "0.10"


def test_yaml_strings_and_integers_are_left_as_written() -> None:
    data = parse_text('monthly: "300.00"\nseats: 300\nversion: "2026.11"\n', "m.yaml")
    assert data == {"monthly": "300.00", "seats": 300, "version": "2026.11"}


@pytest.mark.parametrize("name", ["m.json", "m.yaml"])
def test_json_manifests_read_decimals_exactly(name: str) -> None:
    data = parse_text('{"pricing": {"hourly": {"m5.large": 0.10}, "rate": 0.125, "monthly": 300}}', name)
    assert data == {"pricing": {"hourly": {"m5.large": Decimal("0.10")}, "rate": Decimal("0.125"), "monthly": 300}}
    assert type(data["pricing"]["rate"]) is Decimal
    assert str(data["pricing"]["hourly"]["m5.large"]) == "0.10"


def test_a_json_file_is_read_by_its_name(tmp_path: Path) -> None:
    path = tmp_path / "market.json"
    path.write_text('{"sellers": [{"id": "acme", "name": "Acme"}], "x": 0.1}')
    assert read_file(path) == {"sellers": [{"id": "acme", "name": "Acme"}], "x": Decimal("0.1")}


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1:30.5"])
def test_yaml_floats_that_are_not_decimal_numbers_are_kept_as_text_for_the_field_to_refuse(value: str) -> None:
    assert parse_text(f"monthly: {value}\n", "m.yaml") == {"monthly": value}
    product = {"code": "ab", "seller": "acme", "kind": "saas", "title": "T", "pricing": {"monthly": value}}
    with pytest.raises(ManifestError) as info:
        parse_manifest({"products": [product]})
    assert [str(p) for p in info.value.problems] == [
        f"products[0].pricing.monthly: '{value}' is not a decimal number [PRC-01]"
    ]


# --- duplicate keys -----------------------------------------------------------------------------------------


def test_duplicate_yaml_keys_are_refused_with_line_and_column() -> None:
    text = "sellers:\n  - id: acme\n    name: Acme Corp\n    name: Acme Corporation\n"
    assert only_problem(text) == "m.yaml:4:5: while reading a mapping found duplicate key 'name'"


def test_duplicate_keys_in_flow_mappings_are_refused() -> None:
    assert only_problem("pricing: {hourly: {m5.large: 1, m5.large: 2}}\n") == (
        "m.yaml:1:33: while reading a mapping found duplicate key 'm5.large'"
    )


def test_a_duplicate_top_level_section_is_refused() -> None:
    text = "sellers: []\nbuyers: []\nsellers:\n  - {id: acme, name: Acme}\n"
    assert only_problem(text) == "m.yaml:3:1: while reading a mapping found duplicate key 'sellers'"


def test_duplicate_json_keys_are_refused() -> None:
    problem = only_problem('{"products": [{"pricing": {"monthly": "1",\n "monthly": "2"}}]}', "m.json")
    assert problem.startswith("m.json") and "duplicate key 'monthly'" in problem


# --- broken, empty, wrong-shaped and unreadable files ----------------------------------------------------


def test_truncated_yaml_in_a_flow_mapping_is_located() -> None:
    demo = DEMO_PATH.read_text()
    cut = demo[: demo.index("product: acme-analytics, at:") + len("product: acme-analytics, at:")]
    problem = only_problem(cut, "demo.yaml")
    assert problem.startswith(f"demo.yaml:{end_of(cut)}: while parsing a flow")
    assert "'<stream end>'" in problem


def test_truncated_yaml_in_an_unclosed_quote_is_located() -> None:
    demo = DEMO_PATH.read_text()
    cut = demo[: demo.index('support: "24') + len('support: "24')]
    assert only_problem(cut, "demo.yaml") == (
        f"demo.yaml:{end_of(cut)}: while scanning a quoted scalar found unexpected end of stream"
    )


def test_an_unclosed_flow_sequence_is_located() -> None:
    assert only_problem("regions: [us-east-1, eu-west-1\ncategory: x\n") == (
        "m.yaml:2:9: while parsing a flow sequence expected ',' or ']', but got ':'"
    )


def test_truncated_json_is_located() -> None:
    assert only_problem('{"sellers": [\n  {"id": "acme",', "m.json") == (
        "m.json:2:17: Expecting property name enclosed in double quotes"
    )


def test_python_object_tags_are_refused_not_executed() -> None:
    problem = only_problem("sellers: !!python/object/apply:os.system ['true']\n")
    assert problem.startswith("m.yaml:1:10: could not determine a constructor for the tag")


def test_an_undefined_alias_is_located() -> None:
    assert only_problem("a: &price '1'\nb: *prcie\n") == "m.yaml:2:4: found undefined alias 'prcie'"


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n"])
def test_an_empty_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(content)
    assert read_problem(path) == f"{path}: the file is empty"


@pytest.mark.parametrize("content", ["- sellers\n- buyers\n", "just a sentence\n", "[]\n"])
def test_a_manifest_that_is_not_a_mapping_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(content)
    assert read_problem(path) == f"{path}: a manifest is a mapping with sellers, buyers, products …"


def test_non_utf8_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("sellers:\n  - {id: acme, name: Société Générale}\n".encode("latin-1"))
    assert read_problem(path) == f"{path}: not UTF-8 text"


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert read_problem(path) == f"{path}: cannot read the file: No such file or directory"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert read_problem(tmp_path).startswith(f"{tmp_path}: cannot read the file: ")


def test_a_parse_problem_names_the_file_it_came_from(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("sellers:\n  - {id: acme\n")
    assert read_problem(path).startswith("broken.yaml:3:1: while parsing a flow mapping")


def test_the_demo_manifest_parses() -> None:
    data = read_file(DEMO_PATH)
    assert {"region", "operators", "sellers", "buyers", "products", "subscriptions"} <= set(data)


# --- problems -----------------------------------------------------------------------------------------------


def test_a_problem_reads_field_path_message_rule() -> None:
    assert str(Problem("products[0].pricing.free_trial_days", "must be 5 to 31 days", "PRC-06")) == (
        "products[0].pricing.free_trial_days: must be 5 to 31 days [PRC-06]"
    )
    assert str(Problem("buyers[0].account", "must be exactly 12 digits")) == (
        "buyers[0].account: must be exactly 12 digits"
    )


def test_a_manifest_error_is_one_line_per_problem() -> None:
    error = ManifestError([Problem("a", "first"), Problem("b", "second", "SEL-01")])
    assert str(error) == "a: first\nb: second [SEL-01]"
