"""A transparent risk score: each factor adds points, the case page shows every one."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# FATF "increased monitoring"/high-risk style examples; keep in settings in a real deployment.
HIGH_RISK_COUNTRIES = {"IR", "KP", "MM", "RU", "SY", "AF", "YE"}
ELEVATED_COUNTRIES = {"AE", "CY", "MT", "PA", "TR"}
BUSINESS_POINTS = {
    "gambling": 25,
    "crypto": 30,
    "money_services": 25,
    "travel": 10,
    "retail": 0,
    "software": 0,
    "other": 10,
}


@dataclass(frozen=True)
class Factor:
    name: str
    detail: str
    points: int


def score_case(case: Any) -> tuple[int, str, list[dict[str, Any]]]:
    """(score 0..100, level, factors) for a case from its merchant, ownership, screening and
    documents. Reads `case.screening_results` and `case.documents`."""
    merchant = case.merchant
    factors: list[Factor] = []
    if merchant.country in HIGH_RISK_COUNTRIES:
        factors.append(Factor("country", f"{merchant.country} is a high-risk country", 35))
    elif merchant.country in ELEVATED_COUNTRIES:
        factors.append(Factor("country", f"{merchant.country} needs enhanced checks", 15))
    points = BUSINESS_POINTS.get(merchant.business_type, 10)
    if points:
        factors.append(Factor("business type", merchant.get_business_type_display(), points))
    if case.ownership_layers > 2:
        factors.append(
            Factor(
                "ownership",
                f"{case.ownership_layers} layers to the owners",
                5 * min(case.ownership_layers, 6),
            )
        )
    hits = list(case.screening_results.all())
    for hit in hits:
        factors.append(
            Factor(
                "screening",
                # Not the screened name: the factors are stored in the clear, and the name
                # may be a person's (encrypted in the hit itself).
                f"{hit.get_category_display()}: ~ {hit.matched_name} ({hit.score}%)",
                40 if hit.category == "sanctions" else 25,
            )
        )
    documents = list(case.documents.all())
    if not documents:
        factors.append(Factor("documents", "no documents yet", 10))
    elif any(d.review_status in ("rejected", "reupload_requested") for d in documents):
        factors.append(Factor("documents", "a document was rejected", 15))
    score = min(sum(f.points for f in factors), 100)
    return score, level_for(score, screening_hit=bool(hits)), [asdict(f) for f in factors]


LEVELS = ("low", "medium", "high")
LEVEL_LABELS = {"low": "Low", "medium": "Medium", "high": "High"}


def level_for(score: int, *, screening_hit: bool = False) -> str:
    """The level a score means: the one rule every screen and the workflow share."""
    return "high" if score >= 60 or screening_hit else ("medium" if score >= 30 else "low")


@dataclass(frozen=True)
class CaseRisk:
    """A case's risk as every screen shows it: the score, the level it means, and the level the
    workflow uses (SLA, four eyes), which a person's rating of the merchant may set higher."""

    scored: bool  # scored at submission; a draft or a case from before scoring is not
    score: int
    scored_level: str  # level_for(score): what the factors alone say
    level: str  # what the workflow uses: never below scored_level

    @property
    def raised(self) -> bool:
        """The level is above what the score says: a person rated the merchant higher."""
        return LEVELS.index(self.level) > LEVELS.index(self.scored_level)

    @property
    def label(self) -> str:
        return LEVEL_LABELS[self.level]

    def __str__(self) -> str:
        if not self.scored:
            return f"{self.label} (merchant rating; not scored yet)"
        if self.raised:
            return (
                f"{self.label} (merchant rating; scored {LEVEL_LABELS[self.scored_level]}, "
                f"{self.score}/100)"
            )
        return f"{self.label} ({self.score}/100)"


def case_risk(*, scored: bool, score: int, level: str, screening_hit: bool) -> CaseRisk:
    if not scored:
        return CaseRisk(scored=False, score=0, scored_level=level, level=level)
    scored_level = level_for(score, screening_hit=screening_hit)
    if LEVELS.index(scored_level) > LEVELS.index(level):
        level = scored_level  # a stored level below its own score is stale: the score wins
    return CaseRisk(scored=True, score=score, scored_level=scored_level, level=level)
