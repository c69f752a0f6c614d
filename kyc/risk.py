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
                f"{hit.get_category_display()}: "
                f"{hit.screened_name} ~ {hit.matched_name} ({hit.score}%)",
                40 if hit.category == "sanctions" else 25,
            )
        )
    documents = list(case.documents.all())
    if not documents:
        factors.append(Factor("documents", "no documents yet", 10))
    elif any(d.review_status in ("rejected", "reupload_requested") for d in documents):
        factors.append(Factor("documents", "a document was rejected", 15))
    score = min(sum(f.points for f in factors), 100)
    level = "high" if score >= 60 or hits else ("medium" if score >= 30 else "low")
    return score, level, [asdict(f) for f in factors]
