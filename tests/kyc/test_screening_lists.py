"""The screening matcher over a loaded list, and the list loaders (our CSV, OpenSanctions'
targets.simple.csv and FollowTheMoney JSON lines)."""

from __future__ import annotations

import io
import random
import string
from pathlib import Path

import pytest
from auditlog.models import LogEntry
from django.conf import settings
from django.core.management import CommandError, call_command
from rapidfuzz import fuzz

from kyc.models import ScreeningListEntry, ScreeningListLoad
from kyc.screening import ListEntry, ListIndex, OfflineListProvider, current_index, normalise

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures"
TARGETS = FIXTURES / "targets.simple.csv"
FTM = FIXTURES / "entities.ftm.json"
TARGETS_HEADER = (
    "id,schema,name,aliases,birth_date,countries,addresses,identifiers,sanctions,phones,emails,"
    "dataset,first_seen,last_seen,last_change\n"
)


def load(path: Path | str, *args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("load_screening_list", str(path), *args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def _snapshot() -> tuple[list[tuple[str, str]], int, int]:
    return (
        list(ScreeningListEntry.objects.order_by("pk").values_list("feed", "source_id")),
        ScreeningListLoad.objects.count(),
        LogEntry.objects.count(),
    )


# --- Normalisation and the matcher -------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Société Générale S.A.", "societe generale"),  # accents, case, legal form
        ("NORDWIND Shipping GmbH", "Shipping, Nordwind"),  # order and punctuation
        ("Vltava Games s.r.o.", "vltava games"),
        ("Global-Shadow Trading, L.L.C.", "Global Shadow Trading"),
        ("Zoë  Brien", "brien zoe"),
    ],
)
def test_normalise_ignores_case_accents_punctuation_legal_forms_and_order(a, b) -> None:
    assert normalise(a) == normalise(b)


def test_legal_form_words_alone_leave_nothing_to_match() -> None:
    assert normalise("Ltd.") == ""
    assert (
        ListIndex([ListEntry(names=("Ltd",), category="sanctions", list_name="L")]).search(
            "Co Ltd", 85
        )
        == []
    )


def test_the_length_window_finds_every_hit_a_full_scan_finds() -> None:
    rng = random.Random(14)

    def word() -> str:
        return "".join(rng.choices(string.ascii_lowercase[:8], k=rng.randint(2, 7)))

    names = [" ".join(word() for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    entries = [ListEntry(names=(n,), category="sanctions", list_name="L") for n in names]
    index = ListIndex(entries)
    queries = [*names[:50], *(" ".join(word() for _ in range(3)) for _ in range(150))]
    found_any = 0
    for threshold in (70, 85, 95):
        for query in queries:
            expected = {
                n
                for n in names
                if normalise(n) and fuzz.ratio(normalise(query), normalise(n)) >= threshold
            }
            got = {m.matched_name for m in index.search(query, threshold)}
            assert got == expected, (query, threshold)
            found_any += bool(got)
    assert found_any > 150  # the comparison is not vacuous
    # Many names at once (cdist, for re-screening) find the same hits with the same scores.
    for threshold in (70, 85):
        many = index.search_many([*queries, "", "Ltd"], threshold)
        assert many[""] == [] and many["Ltd"] == []
        for query in queries:
            assert many[query] == index.search(query, threshold), (query, threshold)


def test_one_hit_per_entry_with_its_best_name() -> None:
    index = ListIndex(
        [
            ListEntry(
                names=("Viktor Bout", "Victor Bout", "Viktor But"),
                category="sanctions",
                list_name="L",
                source_id="e1",
            )
        ]
    )
    matches = index.search("Viktor Bout", 85)
    assert [(m.matched_name, m.score, m.source_id) for m in matches] == [("Viktor Bout", 100, "e1")]


def test_a_long_list_of_names_is_screened_at_once_with_the_same_hits() -> None:
    names = [f"Harmless Name {n}" for n in range(40)] + ["Viktor Bout", "Nordwind Shipping"]
    provider = OfflineListProvider()
    together = provider.screen(names)
    one_by_one = [m for name in names for m in provider.screen([name])]
    assert sorted(together, key=repr) == sorted(one_by_one, key=repr)
    assert {m.screened_name for m in together} == {"Viktor Bout", "Nordwind Shipping"}


def test_without_a_loaded_list_the_file_is_screened() -> None:
    assert not ScreeningListLoad.objects.exists()
    (match,) = OfflineListProvider().screen(["Nordwind Shipping"])
    assert (match.list_name, match.category, match.source_id) == (
        "TEST-CONSOLIDATED",
        "sanctions",
        "",
    )


def test_the_index_is_kept_per_process_and_rebuilt_when_the_list_version_changes(
    django_assert_num_queries, tmp_path
) -> None:
    load(TARGETS)
    first = current_index()
    with django_assert_num_queries(1):  # the list version (the newest load's id)
        assert current_index() is first
    with django_assert_num_queries(1):  # the version again; the names are in memory
        assert OfflineListProvider().screen(["Victor But"])[0].source_id == (
            "NK-4GrjzSRXg8Ks9J4CzLx8FX"
        )
    replacement = tmp_path / "targets.simple.csv"
    replacement.write_text(
        TARGETS_HEADER + "Q1,Person,Jane Example,,,,,,,,,Test PEPs,,,\n", encoding="utf-8"
    )
    load(replacement)
    assert current_index() is not first
    assert OfflineListProvider().screen(["Victor But"]) == []
    assert OfflineListProvider().screen(["Example Jane"])[0].category == "pep"


# --- Loaders -----------------------------------------------------------------------------------


def test_our_csv_is_loaded_into_the_internal_feed_and_the_load_is_audited() -> None:
    output = load(settings.KYC_SCREENING_LIST)
    assert "Loaded 8 entries (16 names and aliases) into the feed 'internal'" in output
    bout = ScreeningListEntry.objects.get(name="Viktor Bout")
    assert bout.aliases == ["Viktor Anatolyevich Bout", "Victor But"]
    assert bout.normalised_name == "bout viktor"
    assert bout.normalised_aliases == ["anatolyevich bout viktor", "but victor"]
    assert (bout.feed, bout.category, bout.list_name) == (
        "internal",
        "sanctions",
        "TEST-CONSOLIDATED",
    )
    load_row = ScreeningListLoad.objects.get()
    assert (load_row.entry_count, load_row.format, len(load_row.sha256)) == (8, "csv", 64)
    (entry,) = LogEntry.objects.get_for_object(load_row)
    assert entry.action == LogEntry.Action.CREATE
    assert entry.additional_data == {"source": "command", "detail": "load_screening_list"}
    (match,) = OfflineListProvider().screen(["Vltava Games"])
    assert match.category == "adverse_media" and match.source_id.startswith("csv-")


def test_opensanctions_targets_simple_csv() -> None:
    output = load(TARGETS)
    assert "Loaded 4 entries" in output and "1 rows of other schemas skipped" in output
    entries = {e.source_id: e for e in ScreeningListEntry.objects.all()}
    assert set(entries) == {
        "NK-4GrjzSRXg8Ks9J4CzLx8FX",
        "NK-2sPCoX7GSd9g8kXg6CB6Xc",
        "Q7747",
        "NK-7aLq2Wm4ZyN8sT1vQe3RdB",
    }  # the vessel is not screened
    bout = entries["NK-4GrjzSRXg8Ks9J4CzLx8FX"]
    assert bout.aliases == ["Victor Bout", "Viktor But", "Виктор Анатольевич Бут", "Vadim Aminov"]
    assert bout.category == "sanctions" and bout.feed == "opensanctions"
    assert bout.list_name.startswith("US OFAC Specially Designated Nationals (SDN) List;EU")
    assert entries["Q7747"].category == "pep"  # no sanctions column: the default category
    assert entries["NK-7aLq2Wm4ZyN8sT1vQe3RdB"].name == "Global Shadow Trading, L.L.C."
    hits = {
        m.source_id
        for m in OfflineListProvider().screen(["Maria Gonzalez Herrera", "Acme Widgets"])
    }
    assert hits == {"Q7747"}
    (gst,) = OfflineListProvider().screen(["GST L.L.C."])  # an alias, its legal form dropped
    assert (gst.matched_name, gst.score) == ("GST LLC", 100)


def test_opensanctions_followthemoney_json_lines() -> None:
    output = load(FTM)
    assert "Loaded 4 entries" in output and "2 rows of other schemas skipped" in output
    entries = {e.source_id: e for e in ScreeningListEntry.objects.all()}
    assert {k: e.category for k, e in entries.items()} == {
        "NK-4GrjzSRXg8Ks9J4CzLx8FX": "sanctions",  # topics sanction (and crime)
        "Q7747": "pep",  # role.pep
        "NK-5cYu8DxQwE2rTz6nKj9LmH": "adverse_media",  # crime.fraud
        "NK-8pRw1EsVb6Yh3Uj5Kl7MnC": "pep",  # no topics: the default category
    }
    bout = entries["NK-4GrjzSRXg8Ks9J4CzLx8FX"]
    assert "Boris" not in bout.aliases  # weak aliases are left out
    assert bout.list_name == "us_ofac_sdn, eu_fsf"
    assert entries["Q7747"].aliases == ["María González"]  # further names are aliases
    (match,) = OfflineListProvider().screen(["Liffey Ticketing Ltd"])
    assert (match.source_id, match.score) == ("NK-5cYu8DxQwE2rTz6nKj9LmH", 100)


def test_the_default_category_can_be_chosen() -> None:
    load(FTM, "--default-category", "adverse_media")
    assert ScreeningListEntry.objects.get(source_id="NK-8pRw1EsVb6Yh3Uj5Kl7MnC").category == (
        "adverse_media"
    )


def test_a_load_replaces_its_feed_whole_and_leaves_the_other_feeds() -> None:
    load(settings.KYC_SCREENING_LIST)
    load(TARGETS)
    load(FTM)
    feeds = dict(
        ScreeningListEntry.objects.values_list("feed").annotate(
            n=__import__("django").db.models.Count("pk")
        )
    )
    assert feeds == {"internal": 8, "opensanctions": 4}
    assert "Q7747" in set(ScreeningListEntry.objects.values_list("source_id", flat=True))
    assert not ScreeningListEntry.objects.filter(source_id="NK-2sPCoX7GSd9g8kXg6CB6Xc").exists()


BAD_FILES = [
    # (file name, content, the line named)
    (
        "ours.csv",
        "name,aliases,category,list\nGood Name,,sanctions,L\nBad Name,,terrorism,L\n",
        "line 3: unknown category 'terrorism'",
    ),
    (
        "ours.csv",
        "name,aliases,list\nGood Name,,L\n",
        "line 1: the header lacks the column(s) category",
    ),
    (
        "ours.csv",
        "name,aliases,category,list\nA,,sanctions,L\n,,pep,L\n",
        "line 3: the entry has no name",
    ),
    (
        "ours.csv",
        "name,aliases,category,list\nA,,sanctions,L\nB,,pep\n",
        "line 3: the row has a different",
    ),
    (
        "targets.simple.csv",
        TARGETS_HEADER
        + "Q1,Person,Jane Example,,,,,,,,,PEPs,,,\nQ1,Person,Jane Other,,,,,,,,,PEPs,,,\n",
        "line 3: the id 'Q1' is already on line 2",
    ),
    (
        "targets.simple.csv",
        TARGETS_HEADER + ",Person,No Id,,,,,,,,,PEPs,,,\n",
        "line 2: the row has no id",
    ),
    (
        "entities.ftm.json",
        '{"id": "a", "schema": "Person", "properties": {"name": ["A B"]}}\n{"id": "b", "schema"\n',
        "line 2: not JSON",
    ),
    (
        "entities.ftm.json",
        '{"id": "a", "schema": "Person", "properties": {"name": ["A B"]}}\n\n'
        '{"id": "b", "schema": "Company", "properties": {"alias": ["X"]}}\n',
        "line 3: the entity has no properties.name",
    ),
    (
        "entities.ftm.json",
        '{"id": "a", "schema": "Person", "properties": {"name": "A B"}}\n',
        "line 1: properties.name is not a list of strings",
    ),
    (
        "ours.csv",
        b"name,aliases,category,list\nA,,sanctions,L\n\xff\xfe,,pep,L\n",
        "line 3: not UTF-8 text",
    ),
]


@pytest.mark.parametrize(("file_name", "content", "message"), BAD_FILES)
def test_a_bad_file_is_refused_with_its_line_and_nothing_changes(
    tmp_path, file_name, content, message
) -> None:
    load(settings.KYC_SCREENING_LIST)
    load(TARGETS)
    before = _snapshot()
    path = tmp_path / file_name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(CommandError) as refused:
        load(path)
    assert message in str(refused.value) and "Nothing was loaded" in str(refused.value)
    assert _snapshot() == before


def test_a_missing_file_is_refused(tmp_path) -> None:
    before = _snapshot()
    with pytest.raises(CommandError, match="no such file"):
        load(tmp_path / "absent.csv")
    assert _snapshot() == before


def test_the_loader_reports_progress(tmp_path) -> None:
    path = tmp_path / "big.csv"
    rows = "".join(f"Entity Number {n},,sanctions,L\n" for n in range(20_000))
    path.write_text("name,aliases,category,list\n" + rows, encoding="utf-8")
    output = load(path, "--feed", "big")
    assert "read 10,000" in output and "read 20,000" in output and "written 20,000" in output
    assert ScreeningListEntry.objects.filter(feed="big").count() == 20_000
