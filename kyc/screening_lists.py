"""Reading screening list files: our CSV and OpenSanctions' published formats.

- Our CSV (`csv`): columns name, aliases (separated by |), category (sanctions, pep,
  adverse_media), list, and optionally id.
- OpenSanctions' consolidated `targets.simple.csv` (`targets`): columns id, schema, name,
  aliases (separated by ;), birth_date, countries, addresses, identifiers, sanctions, phones,
  emails, dataset, first_seen, last_seen, last_change. A row whose `sanctions` column is filled
  is a sanctions entry; the others take the default category (pep unless told otherwise: the
  consolidated file's other targets are mostly politically exposed persons).
- OpenSanctions' FollowTheMoney JSON lines (`ftm`, e.g. entities.ftm.json): one entity per
  line with id, schema, properties.name (the first is the name, the rest aliases),
  properties.alias, datasets and topics (top level or properties.topics): sanction* and
  debarment are sanctions, role.pep and role.rca are PEPs, crime*, reg.* and wanted are adverse
  media. Weak aliases are left out: they are short and match everything.

Only people and organisations are screened (schemas Person, Organization, Company,
LegalEntity); other rows (vessels, aircraft, sanctions programmes, addresses...) are skipped
and counted. Any malformed row refuses the whole file, naming its line.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.files import file_sha256

from .exceptions import KycError
from .models import ScreeningCategory, ScreeningListEntry, ScreeningListFormat
from .screening import normalise

SCREENED_SCHEMAS = frozenset({"Person", "Organization", "Company", "LegalEntity"})
NAME_MAX = ScreeningListEntry._meta.get_field("name").max_length or 500
LIST_NAME_MAX = ScreeningListEntry._meta.get_field("list_name").max_length or 100
SOURCE_ID_MAX = ScreeningListEntry._meta.get_field("source_id").max_length or 200


class BadListFile(KycError):
    """A screening list file that cannot be loaded; nothing of it was loaded."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line


@dataclass
class ParsedEntry:
    source_id: str
    name: str
    list_name: str
    category: str
    aliases: list[str] = field(default_factory=list)
    line: int = 0

    @property
    def normalised_name(self) -> str:
        return normalise(self.name)

    @property
    def normalised_aliases(self) -> list[str]:
        return [normalise(a) for a in self.aliases]


@dataclass
class ParsedList:
    entries: list[ParsedEntry]
    skipped: int
    sha256: str


Progress = Callable[[int], None]


def category_from_topics(topics: list[str], default: str) -> str:
    if any(t.startswith("sanction") or t.startswith("debarment") for t in topics):
        return ScreeningCategory.SANCTIONS
    if any(t in ("role.pep", "role.rca") or t.startswith("role.pep") for t in topics):
        return ScreeningCategory.PEP
    if any(t.startswith(("crime", "reg.", "wanted", "poi")) for t in topics):
        return ScreeningCategory.ADVERSE_MEDIA
    return default


def detect_format(path: Path) -> str:
    """ftm for JSON, targets for a CSV with a schema column, else our CSV."""
    if path.suffix.lower() in (".json", ".jsonl", ".ndjson"):
        return ScreeningListFormat.FTM
    with path.open("rb") as handle:
        first = handle.readline().decode("utf-8", "replace")
    header = next(csv.reader([first]), [])
    return ScreeningListFormat.TARGETS if "schema" in header else ScreeningListFormat.OURS


def _text_lines(path: Path) -> Iterator[str]:
    """The file's lines as text, naming the first line that is not UTF-8."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise BadListFile(number, "not UTF-8 text") from exc


def _names(line: int, name: str, aliases: list[str]) -> tuple[str, list[str]]:
    name = name.strip()
    if not name:
        raise BadListFile(line, "the entry has no name")
    cleaned = list(dict.fromkeys(a.strip() for a in aliases if a.strip() and a.strip() != name))
    for value in (name, *cleaned):
        if len(value) > NAME_MAX:
            raise BadListFile(line, f"a name is longer than {NAME_MAX} characters")
    return name, cleaned


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _csv_rows(path: Path, required: set[str]) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(_text_lines(path))
    try:
        header = set(reader.fieldnames or [])
    except csv.Error as exc:
        raise BadListFile(1, f"not a CSV file ({exc})") from exc
    missing = required - header
    if missing:
        raise BadListFile(1, f"the header lacks the column(s) {', '.join(sorted(missing))}")
    try:
        for row in reader:
            if None in row or any(v is None for v in row.values()):
                raise BadListFile(reader.line_num, "the row has a different number of columns")
            yield reader.line_num, row
    except csv.Error as exc:
        raise BadListFile(reader.line_num, f"unreadable CSV ({exc})") from exc


def _ours(path: Path, progress: Progress | None) -> tuple[list[ParsedEntry], int]:
    entries = []
    for line, row in _csv_rows(path, {"name", "aliases", "category", "list"}):
        name, aliases = _names(line, row["name"], row["aliases"].split("|"))
        category = row["category"].strip()
        if category not in ScreeningCategory.values:
            raise BadListFile(
                line,
                f"unknown category '{category}' (one of {', '.join(ScreeningCategory.values)})",
            )
        list_name = row["list"].strip()
        if not list_name:
            raise BadListFile(line, "the entry names no list")
        source_id = (row.get("id") or "").strip() or (
            "csv-" + hashlib.sha256(f"{list_name}|{name}".encode()).hexdigest()[:20]
        )
        entries.append(
            ParsedEntry(source_id, name, _clip(list_name, LIST_NAME_MAX), category, aliases, line)
        )
        if progress:
            progress(len(entries))
    return entries, 0


TARGETS_COLUMNS = {
    "id",
    "schema",
    "name",
    "aliases",
    "birth_date",
    "countries",
    "addresses",
    "identifiers",
    "sanctions",
    "phones",
    "emails",
    "dataset",
    "first_seen",
    "last_seen",
    "last_change",
}


def _targets(path: Path, default: str, progress: Progress | None) -> tuple[list[ParsedEntry], int]:
    entries, skipped = [], 0
    for line, row in _csv_rows(path, TARGETS_COLUMNS):
        source_id, schema = row["id"].strip(), row["schema"].strip()
        if not source_id or not schema:
            raise BadListFile(line, "the row has no id or no schema")
        if schema not in SCREENED_SCHEMAS:
            skipped += 1
            continue
        name, aliases = _names(line, row["name"], row["aliases"].split(";"))
        category = ScreeningCategory.SANCTIONS if row["sanctions"].strip() else default
        list_name = _clip(row["dataset"].strip() or "OpenSanctions", LIST_NAME_MAX)
        entries.append(ParsedEntry(source_id, name, list_name, category, aliases, line))
        if progress:
            progress(len(entries))
    return entries, skipped


def _strings(line: int, value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadListFile(line, f"{what} is not a list of strings")
    return value


def _ftm(path: Path, default: str, progress: Progress | None) -> tuple[list[ParsedEntry], int]:
    entries, skipped = [], 0
    for line, text in enumerate(_text_lines(path), start=1):
        if not text.strip():
            continue
        try:
            entity = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadListFile(line, f"not JSON ({exc.msg})") from exc
        if not isinstance(entity, dict):
            raise BadListFile(line, "not a JSON object")
        source_id, schema = entity.get("id"), entity.get("schema")
        if not isinstance(source_id, str) or not isinstance(schema, str):
            raise BadListFile(line, "the entity has no id or no schema")
        if schema not in SCREENED_SCHEMAS:
            skipped += 1
            continue
        properties = entity.get("properties")
        if not isinstance(properties, dict):
            raise BadListFile(line, "the entity has no properties")
        names = _strings(line, properties.get("name"), "properties.name")
        if not names:
            raise BadListFile(line, "the entity has no properties.name")
        aliases = names[1:] + _strings(line, properties.get("alias"), "properties.alias")
        name, aliases = _names(line, names[0], aliases)
        topics = _strings(line, entity.get("topics"), "topics") + _strings(
            line, properties.get("topics"), "properties.topics"
        )
        datasets = _strings(line, entity.get("datasets"), "datasets")
        list_name = _clip(", ".join(datasets) or "OpenSanctions", LIST_NAME_MAX)
        entries.append(
            ParsedEntry(
                source_id,
                name,
                list_name,
                category_from_topics(topics, default),
                aliases,
                line,
            )
        )
        if progress:
            progress(len(entries))
    return entries, skipped


def parse_list_file(
    path: Path,
    *,
    format: str,
    default_category: str = ScreeningCategory.PEP,
    progress: Progress | None = None,
) -> ParsedList:
    """Every entry of the file, or BadListFile naming the first bad line."""
    if default_category not in ScreeningCategory.values:
        raise KycError(f"Unknown category '{default_category}'.")
    if format == ScreeningListFormat.OURS:
        entries, skipped = _ours(path, progress)
    elif format == ScreeningListFormat.TARGETS:
        entries, skipped = _targets(path, default_category, progress)
    elif format == ScreeningListFormat.FTM:
        entries, skipped = _ftm(path, default_category, progress)
    else:
        raise KycError(f"Unknown list format '{format}'.")
    seen: dict[str, int] = {}
    for entry in entries:
        if len(entry.source_id) > SOURCE_ID_MAX:
            raise BadListFile(entry.line, f"the id is longer than {SOURCE_ID_MAX} characters")
        if entry.source_id in seen:
            raise BadListFile(
                entry.line, f"the id '{entry.source_id}' is already on line {seen[entry.source_id]}"
            )
        seen[entry.source_id] = entry.line
    return ParsedList(entries, skipped, file_sha256(path))
