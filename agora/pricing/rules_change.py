"""What may change in the pricing of a published product (PRC-08, PRC-09): pure, over two documents."""

from __future__ import annotations

from agora.pricing.rules_checks import Violation
from agora.pricing.schema import PricingDocument


def _dimensions(document: PricingDocument) -> dict[str, str]:
    dims: dict[str, str] = {}
    if document.usage:
        dims.update({d.name: d.description for d in document.usage.dimensions})
    if document.contract:
        dims.update({d.name: d.description for d in document.contract.dimensions})
    return dims


def is_usage(document: PricingDocument) -> bool:
    return document.usage is not None


def change_violations(old: PricingDocument, new: PricingDocument) -> list[Violation]:
    """Problems with replacing `old` (published) by `new`. Prices may change; the model's identity may not."""
    if is_usage(old) != is_usage(new):
        direction = (
            "a usage-priced product cannot move to another model"
            if is_usage(old)
            else ("a product with standard pricing cannot move to usage pricing")
        )
        return [Violation("", f"{direction}: list a new product instead", "PRC-09")]
    problems: list[Violation] = []
    before, after = _dimensions(old), _dimensions(new)
    for name in sorted(before.keys() - after.keys()):
        problems.append(Violation(f"dimensions.{name}", "a published dimension cannot be removed", "PRC-08"))
    for name in sorted(after.keys() - before.keys()):
        problems.append(Violation(f"dimensions.{name}", "dimensions cannot be added after listing", "PRC-08"))
    for name in sorted(before.keys() & after.keys()):
        if before[name] != after[name]:
            problems.append(
                Violation(
                    f"dimensions.{name}.description", "a published dimension's description cannot change", "PRC-08"
                )
            )
    return problems
