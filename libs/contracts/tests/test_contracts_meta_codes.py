"""The vocabulary of Meta's error codes: one category per code, a title for every code."""

import itertools
import subprocess
import sys

import pytest

import flowchat_contracts
from flowchat_contracts import meta_codes
from flowchat_contracts.meta_codes import ALL, CATEGORIES, TITLES, MetaCode, category, title


def test_the_vocabulary_is_exported_from_the_package():
    assert flowchat_contracts.meta_codes is meta_codes
    assert "meta_codes" in flowchat_contracts.__all__
    for name in meta_codes.__all__:
        assert hasattr(meta_codes, name)


def test_no_code_has_two_names():
    assert len(MetaCode.__members__) == len(MetaCode) == len({int(c) for c in MetaCode})


def test_categories_are_disjoint():
    for (a, codes_a), (b, codes_b) in itertools.combinations(CATEGORIES.items(), 2):
        assert not codes_a & codes_b, f"{a} and {b} share {sorted(codes_a & codes_b)}"


def test_every_code_is_in_exactly_one_category():
    assert frozenset().union(*CATEGORIES.values()) == ALL == frozenset(MetaCode)
    for code in MetaCode:
        assert category(code) is not None


def test_every_code_has_a_title():
    assert set(TITLES) == set(MetaCode)
    for code in ALL:
        assert title(code), code
        assert title(int(code)) == TITLES[code]


def test_the_permission_range_is_named():
    for code in meta_codes.API_PERMISSIONS:
        assert title(code) == "API Permission"
        assert category(code) == "permission"
    assert title(300) is None
    assert category(300) is None
    assert title(999_999) is None
    assert category(999_999) is None


@pytest.mark.parametrize(
    ("name", "codes"),
    [
        ("TOKEN", {0, 102, 190, 463, 467}),
        ("OPT_OUT", {131050}),
        ("WINDOW", {131047}),
        ("THROUGHPUT", {130429}),
        ("PAIR_RATE", {131056}),
        ("SPAM_RATE", {131048}),
        ("RATE_LIMIT", {4, 80007}),
        ("PAYMENT", {131042}),
        ("MEDIA", {131052, 131053}),
        ("TEMPLATE", {131063, 132000, 132001, 132005, 132007, 132012, 132015, 132016}),
        ("SERVER", {1, 2, 131000, 131016, 131057, 133004}),
    ],
)
def test_the_sets_other_code_relies_on(name, codes):
    assert getattr(meta_codes, name) == codes
    assert all(isinstance(code, MetaCode) for code in getattr(meta_codes, name))


def test_transient_is_meta_side_trouble_and_rates_but_never_the_pair_rate():
    assert meta_codes.TRANSIENT == meta_codes.SERVER | meta_codes.RATE_LIMIT | meta_codes.THROUGHPUT
    assert not meta_codes.TRANSIENT & (
        meta_codes.PAIR_RATE | meta_codes.SPAM_RATE | meta_codes.TOKEN
    )


def test_codes_compare_and_hash_as_plain_integers():
    assert {MetaCode.MARKETING_OPT_OUT} == {131050}
    assert 131050 in meta_codes.OPT_OUT
    assert str(MetaCode.MARKETING_OPT_OUT) == "131050"
    assert f"{MetaCode.THROUGHPUT_REACHED}" == "130429"


def test_the_vocabulary_loads_nothing_but_the_standard_library():
    code = (
        "import sys, importlib.util\n"
        "spec = importlib.util.find_spec('flowchat_contracts.meta_codes')\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "before = set(sys.modules)\n"
        "spec.loader.exec_module(module)\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new - set(sys.stdlib_module_names)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
