"""Sanctions, PEP and adverse-media screening behind a small provider interface.

The built-in provider screens names offline against a list shipped in the repository
(kyc/data/screening_list.csv: a small test list). To screen against the official consolidated
lists, export them (e.g. the EU Financial Sanctions Files, the UK OFSI consolidated list, the
UN Security Council list, the US OFAC SDN list) into the same CSV columns (name, aliases
separated by |, category, list) and point KYC_SCREENING_LIST at the file; refresh it daily.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from django.conf import settings

if TYPE_CHECKING:
    from payments.models import Merchant

LEGAL_SUFFIXES = {
    "ltd",
    "limited",
    "llc",
    "gmbh",
    "sarl",
    "sl",
    "bv",
    "sro",
    "s",
    "r",
    "o",
    "inc",
    "plc",
    "sa",
    "ag",
    "co",
}


@dataclass(frozen=True)
class Match:
    screened_name: str
    matched_name: str
    list_name: str
    category: str
    score: int  # 0..100


class ScreeningProvider(Protocol):
    name: str

    def screen(self, names: list[str]) -> list[Match]: ...


def normalise(name: str) -> str:
    """Case, accents, punctuation, legal-form suffixes and word order do not matter."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().casefold()
    words = [w for w in re.split(r"[^a-z0-9]+", text) if w and w not in LEGAL_SUFFIXES]
    return " ".join(sorted(words))


def similarity(a: str, b: str) -> int:
    return round(100 * SequenceMatcher(None, normalise(a), normalise(b)).ratio())


@dataclass(frozen=True)
class ListEntry:
    names: tuple[str, ...]
    category: str
    list_name: str


@lru_cache(maxsize=4)
def load_list(path: str) -> tuple[ListEntry, ...]:
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return tuple(
            ListEntry(
                names=(row["name"], *[a for a in row["aliases"].split("|") if a]),
                category=row["category"],
                list_name=row["list"],
            )
            for row in csv.DictReader(handle)
        )


class OfflineListProvider:
    name = "offline-list"

    def __init__(self, path: str | None = None, threshold: int | None = None) -> None:
        self.path = path or str(settings.KYC_SCREENING_LIST)
        self.threshold = threshold or settings.KYC_SCREENING_THRESHOLD

    def screen(self, names: list[str]) -> list[Match]:
        matches = []
        for screened in filter(None, (n.strip() for n in names)):
            for entry in load_list(self.path):
                best_score, best_name = max((similarity(screened, n), n) for n in entry.names)
                if best_score >= self.threshold:
                    matches.append(
                        Match(screened, best_name, entry.list_name, entry.category, best_score)
                    )
        return matches


def get_provider() -> ScreeningProvider:
    return OfflineListProvider()


def screened_person_names(merchant: Merchant) -> list[str]:
    """The names of the people behind a merchant: its contact person and its beneficial
    owners (decrypted: the columns are encrypted), each once, in a stable order."""
    from .models import BeneficialOwner

    owners = BeneficialOwner.objects.filter(merchant=merchant).order_by("pk")
    names = [merchant.contact_name, *(owner.full_name for owner in owners)]
    return list(dict.fromkeys(n.strip() for n in names if n and n.strip()))


def names_to_screen(merchant: Merchant) -> list[str]:
    """Every name to screen for a merchant: its legal and trading names, its contact person
    and its beneficial owners, each once. Submission screens these; so does re-screening."""
    names = [merchant.legal_name, merchant.trading_name, *screened_person_names(merchant)]
    return list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
