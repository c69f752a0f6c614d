"""Sanctions, PEP and adverse-media screening behind a small provider interface.

The built-in provider screens names offline against the screening list loaded into the database
(`manage.py load_screening_list`: our CSV, OpenSanctions' targets.simple.csv or FollowTheMoney
JSON lines; see kyc/screening_lists.py). Until a list is loaded it reads the CSV at
KYC_SCREENING_LIST (kyc/data/screening_list.csv: a small test list).

Matching. Every name and alias is normalised (`normalise`): accents are folded (NFKD, then
ASCII), case is folded, punctuation splits words, legal-form words (Ltd, GmbH, LLC, s.r.o....)
are dropped and the words are sorted, so "NORDWIND shipping GmbH" and "Shipping Nordwind" are
the same key. Two keys are compared with rapidfuzz's `fuzz.ratio` (the Indel similarity
2*LCS/(len a + len b), 0 to 100, close to difflib's ratio), and a name is a hit at
KYC_SCREENING_THRESHOLD or more. An entry is one hit, with its best-scoring name.

Speed. Each process keeps the normalised names in memory, sorted by length, and rebuilds them
when the list version (the newest ScreeningListLoad) changes. A score of t% needs the two
lengths within a factor (2 - t)/t of each other, so one name is compared only with the names in
that length window, in C, by `process.extract` with the cutoff. One name against 50,000 list
names takes about a millisecond (bench/screening.py), where difflib pair by pair took 3 s.
Re-screening hands many names at once to `search_many`, which compares them with the whole
list in rapidfuzz's `cdist` (SIMD across names, several times faster per name).
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from rapidfuzz import fuzz, process

from audits.crypto.fields import ErasedStr

if TYPE_CHECKING:
    from payments.models import Merchant

# Legal-form words, as words after splitting on punctuation ("s.r.o." is s, r, o).
LEGAL_SUFFIXES = {
    "ltd",
    "limited",
    "llc",
    "llp",
    "lp",
    "gmbh",
    "sarl",
    "sas",
    "sl",
    "srl",
    "spa",
    "bv",
    "nv",
    "sro",
    "s",
    "r",
    "o",
    "inc",
    "incorporated",
    "corp",
    "corporation",
    "plc",
    "pte",
    "pty",
    "sa",
    "ag",
    "kg",
    "co",
    "ooo",
    "oao",
    "zao",
    "jsc",
    "pjsc",
}


@dataclass(frozen=True)
class Match:
    screened_name: str
    matched_name: str
    list_name: str
    category: str
    score: int  # 0..100
    source_id: str = ""  # the entry's id in its source; empty for the CSV read from a file

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes a hit the same hit again: the name screened and the list entry."""
        return hit_key(self.screened_name, self.list_name, self.source_id, self.matched_name)


def hit_key(
    screened_name: str, list_name: str, source_id: str, matched_name: str
) -> tuple[str, str, str]:
    return (screened_name, list_name, source_id or matched_name)


class ScreeningProvider(Protocol):
    name: str

    def screen(self, names: list[str]) -> list[Match]: ...


def normalise(name: str) -> str:
    """Case, accents, punctuation, legal-form words and word order do not matter:
    "Société Générale S.A." and "GENERALE, Societe" are both "generale societe"."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().casefold()
    # Dotted abbreviations are one word: S.A. is sa, L.L.C. is llc, s.r.o. is sro.
    text = re.sub(r"(?<=\b[a-z])\.", "", text)
    words = [w for w in re.split(r"[^a-z0-9]+", text) if w and w not in LEGAL_SUFFIXES]
    return " ".join(sorted(words))


def similarity(a: str, b: str) -> int:
    return round(fuzz.ratio(normalise(a), normalise(b)))


@dataclass(frozen=True)
class ListEntry:
    names: tuple[str, ...]
    category: str
    list_name: str
    source_id: str = ""
    keys: tuple[str, ...] = ()  # the names normalised, when already known


# Names compared at once by search_many: a float32 matrix of CDIST_CHUNK x list names.
CDIST_CHUNK = 128
# From this many names in one screen() call, search_many is the faster way.
MANY_NAMES = 32
# How search and search_many both score a normalised name against the list's: the one
# comparison, so that the two give the same hits.
_COMPARISON: dict[str, Any] = {"scorer": fuzz.ratio, "processor": None}


class ListIndex:
    """The distinct normalised names of a list, sorted by length, each pointing at the entries
    (and their names as listed) that normalise to it."""

    def __init__(self, entries: Sequence[ListEntry]) -> None:
        owners: dict[str, dict[int, str]] = {}
        for number, entry in enumerate(entries):
            keys = entry.keys or tuple(normalise(n) for n in entry.names)
            for key, name in zip(keys, entry.names, strict=True):
                if key:
                    owners.setdefault(key, {}).setdefault(number, name)
        self.entries = entries
        self.keys = sorted(owners, key=len)
        self.owners = [tuple(owners[key].items()) for key in self.keys]
        self.lengths = [len(key) for key in self.keys]

    def __len__(self) -> int:
        return len(self.keys)

    def _within_reach(self, shortest: int, longest: int, threshold: int) -> tuple[int, int]:
        """The slice of `keys` whose lengths can score `threshold` against a name of length
        `shortest` to `longest` (the epsilon keeps a bound that is a whole length inside)."""
        cut = max(threshold, 1) / 100
        low = bisect.bisect_left(self.lengths, shortest * cut / (2 - cut) - 1e-9)
        high = bisect.bisect_right(self.lengths, longest * (2 - cut) / cut + 1e-9)
        return low, high

    def search(self, screened: str, threshold: int) -> list[Match]:
        key = normalise(screened)
        if not key:
            return []
        low, high = self._within_reach(len(key), len(key), threshold)
        found = process.extract(
            key, self.keys[low:high], score_cutoff=threshold, limit=None, **_COMPARISON
        )
        return self._matches(screened, ((low + offset, score) for _, score, offset in found))

    def search_many(self, names: Sequence[str], threshold: int) -> dict[str, list[Match]]:
        """Every name's hits, the names compared with the whole list many at a time by
        rapidfuzz's cdist (SIMD across names): several times faster per name than search() for
        a batch, the same hits."""
        import numpy as np

        by_key: dict[str, list[str]] = {}
        for name in names:
            key = normalise(name)
            if key:
                by_key.setdefault(key, []).append(name)
        # By length, so that each chunk is compared only with the list names its lengths allow.
        keys = sorted(by_key, key=len)
        out: dict[str, list[Match]] = {name: [] for name in names}
        for start in range(0, len(keys), CDIST_CHUNK):
            chunk = keys[start : start + CDIST_CHUNK]
            low, high = self._within_reach(len(chunk[0]), len(chunk[-1]), threshold)
            if low >= high:
                continue
            scores = process.cdist(
                chunk,
                self.keys[low:high],
                score_cutoff=threshold,
                dtype=np.float32,
                workers=1,
                **_COMPARISON,
            )
            rows, columns = np.nonzero(scores)
            hits: dict[int, list[tuple[int, float]]] = {}
            for row, column in zip(rows.tolist(), columns.tolist(), strict=True):
                hits.setdefault(row, []).append((low + column, float(scores[row, column])))
            for row, found in hits.items():
                for name in by_key[chunk[row]]:
                    out[name] = self._matches(name, found)
        return out

    def _matches(self, screened: str, found: Iterable[tuple[int, float]]) -> list[Match]:
        """One match per entry, with its best-scoring name, from (key position, score)."""
        best: dict[int, tuple[float, str]] = {}
        for position, score in found:
            for number, name in self.owners[position]:
                if number not in best or score > best[number][0]:
                    best[number] = (score, name)
        matches = []
        for number, (score, name) in best.items():
            entry = self.entries[number]
            matches.append(
                Match(
                    screened,
                    name,
                    entry.list_name,
                    entry.category,
                    min(100, round(score)),
                    entry.source_id,
                )
            )
        return sorted(matches, key=lambda m: (-m.score, m.matched_name))


def load_list(path: str) -> tuple[ListEntry, ...]:
    """Our CSV (name, aliases separated by |, category, list) read straight from a file."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return tuple(
            ListEntry(
                names=(row["name"], *[a for a in row["aliases"].split("|") if a]),
                category=row["category"],
                list_name=row["list"],
            )
            for row in csv.DictReader(handle)
        )


def database_entries() -> Iterable[ListEntry]:
    from .models import ScreeningListEntry

    rows = ScreeningListEntry.objects.values_list(
        "name",
        "aliases",
        "normalised_name",
        "normalised_aliases",
        "list_name",
        "category",
        "source_id",
    ).order_by("pk")
    for name, aliases, key, alias_keys, list_name, category, source_id in rows.iterator(
        chunk_size=5000
    ):
        yield ListEntry(
            names=(name, *aliases),
            keys=(key, *alias_keys),
            category=category,
            list_name=list_name,
            source_id=source_id,
        )


def list_version(path: str | None = None) -> tuple[object, ...]:
    """The newest load's id; with no list loaded (or a file asked for), the file and its
    modification time."""
    if path is None:
        from .models import ScreeningListLoad

        newest = ScreeningListLoad.objects.order_by("-pk").values_list("pk", flat=True).first()
        if newest is not None:
            return ("database", newest)
        path = str(settings.KYC_SCREENING_LIST)
    return ("file", path, os.stat(path).st_mtime_ns)


# One index per process (per list source), rebuilt when its version changes.
_indexes: dict[str | None, tuple[tuple[object, ...], ListIndex]] = {}


def current_index(path: str | None = None) -> ListIndex:
    version = list_version(path)
    cached = _indexes.get(path)
    if cached is not None and cached[0] == version:
        return cached[1]
    if version[0] == "database":
        index = ListIndex(tuple(database_entries()))
    else:
        index = ListIndex(load_list(str(version[1])))
    _indexes[path] = (version, index)
    return index


class OfflineListProvider:
    name = "offline-list"

    def __init__(self, path: str | None = None, threshold: int | None = None) -> None:
        self.path = path  # None: the loaded list, else the KYC_SCREENING_LIST file
        self.threshold = threshold or settings.KYC_SCREENING_THRESHOLD

    def screen(self, names: list[str]) -> list[Match]:
        index = current_index(self.path)
        matches: list[Match] = []
        distinct = list(dict.fromkeys(filter(None, (n.strip() for n in names))))
        if len(distinct) >= MANY_NAMES:
            for found in index.search_many(distinct, self.threshold).values():
                matches.extend(found)
            return matches
        # Names that normalise alike ("Acme Ltd", "ACME") are searched once.
        by_key: dict[str, list[Match]] = {}
        for screened in distinct:
            key = normalise(screened)
            if key not in by_key:
                by_key[key] = index.search(screened, self.threshold)
            matches.extend(dataclasses.replace(m, screened_name=screened) for m in by_key[key])
        return matches


def get_provider() -> ScreeningProvider:
    return OfflineListProvider()


def screened_person_names(merchant: Merchant) -> list[str]:
    """The names of the people behind a merchant: its contact person and its beneficial
    owners (decrypted: the columns are encrypted), each once, in a stable order."""
    from .models import BeneficialOwner

    owners = BeneficialOwner.objects.filter(merchant=merchant).order_by("pk")
    names = [merchant.contact_name, *(owner.full_name for owner in owners)]
    # An erased person's name reads "(erased)": nobody to screen.
    return list(
        dict.fromkeys(n.strip() for n in names if n and n.strip() and not isinstance(n, ErasedStr))
    )


def names_to_screen(merchant: Merchant) -> list[str]:
    """Every name to screen for a merchant: its legal and trading names, its contact person
    and its beneficial owners, each once. Submission screens these; so does re-screening."""
    names = [merchant.legal_name, merchant.trading_name, *screened_person_names(merchant)]
    return list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
