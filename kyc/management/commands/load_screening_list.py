from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from audits.commands import AuditedCommand
from kyc.exceptions import KycError
from kyc.models import ScreeningCategory, ScreeningListFormat
from kyc.screening_lists import detect_format, parse_list_file
from kyc.services import screening_list_replace

FORMATS = ["auto", *ScreeningListFormat.values]


@contextmanager
def _nothing_loaded(message: Callable[[KycError], str]) -> Iterator[None]:
    """A file or a load refused stops the command, saying why in `message(error)`."""
    try:
        yield
    except KycError as exc:
        raise CommandError(message(exc)) from exc


class Command(AuditedCommand):
    help = (
        "Load a screening list file into a feed, replacing that feed's entries whole in one "
        "transaction: our CSV (kyc/data/screening_list.csv), OpenSanctions' targets.simple.csv "
        "or its FollowTheMoney JSON lines (entities.ftm.json). A malformed file is refused with "
        "its line number and nothing is loaded."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", help="the list file")
        parser.add_argument(
            "--format",
            choices=FORMATS,
            default="auto",
            help="csv (ours), targets (targets.simple.csv) or ftm (JSON lines); auto: by the "
            "file's name and header",
        )
        parser.add_argument(
            "--feed",
            help="the feed the file replaces (default: internal for our CSV, opensanctions "
            "for OpenSanctions files)",
        )
        parser.add_argument(
            "--default-category",
            choices=ScreeningCategory.values,
            default=ScreeningCategory.PEP,
            help="OpenSanctions entries with no sanctions and no known topic (default: pep)",
        )

    def _progress(self, what: str, every: int = 10_000) -> Any:
        def report(done: int) -> None:
            if done % every == 0:
                self.stderr.write(f"  {what} {done:,}")

        return report

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file.")
        try:
            fmt = options["format"] if options["format"] != "auto" else detect_format(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path}: cannot read it ({exc}).") from exc
        feed = options["feed"] or (
            "internal" if fmt == ScreeningListFormat.OURS else "opensanctions"
        )
        self.stderr.write(f"Reading {path} as {ScreeningListFormat(fmt).label}...")
        with _nothing_loaded(lambda exc: f"{path}: {exc}. Nothing was loaded."):
            parsed = parse_list_file(
                path,
                format=fmt,
                default_category=options["default_category"],
                progress=self._progress("read"),
            )
        self.stderr.write(
            f"Read {len(parsed.entries):,} entries ({parsed.skipped:,} rows of other schemas "
            f"skipped); replacing the feed '{feed}'..."
        )
        with _nothing_loaded(lambda exc: f"{exc} Nothing was loaded."):
            load = screening_list_replace(
                feed=feed,
                format=fmt,
                file_name=str(path),
                parsed=parsed,
                progress=self._progress("written"),
            )
        self.stdout.write(
            f"Loaded {load.entry_count:,} entries ({load.name_count:,} names and aliases) into "
            f"the feed '{feed}' (list version {load.pk})."
        )
