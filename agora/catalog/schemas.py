"""A listing's fields by their API names: shared by the manifest, `POST /api/v1/products` and `PATCH`."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, StringConstraints

from agora.outbound import check_url
from agora.pricing.schema import PricingDocument


def _fetchable(url: HttpUrl) -> HttpUrl:
    """A URL the server will fetch: not into the marketplace's own network (agora.outbound)."""
    problem = check_url(str(url))
    if problem:
        raise ValueError(problem)
    return url


class ProductKind(StrEnum):
    """LST-01."""

    SAAS = "saas"
    AMI = "ami"
    CONTAINER = "container"
    ML_ALGORITHM = "ml_algorithm"
    ML_MODEL = "ml_model"
    MANAGED_SERVICE = "managed_service"


class ProductState(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    PUBLISHING = "publishing"
    LIMITED = "limited"
    PUBLIC = "public"
    RESTRICTED = "restricted"


CODE_PATTERN = r"^[a-z0-9][a-z0-9-]{1,63}$"
REGION_PATTERN = r"^[a-z]{2}(-[a-z0-9]+)+$"

Code = Annotated[str, StringConstraints(pattern=CODE_PATTERN)]
Region = Annotated[str, StringConstraints(pattern=REGION_PATTERN)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def _short_description(value: str) -> str:
    value = value.strip()
    if len(value) > 300:
        raise ValueError(f"may have at most 300 characters, got {len(value)} [LST-03]")
    return value


def _highlights_total(value: list[str]) -> list[str]:
    total = sum(len(h) for h in value)
    if total > 1000:
        raise ValueError(f"highlights may have at most 1,000 characters in all, got {total} [LST-03]")
    return value


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Version(Closed):
    version: Text = Field(description="customer-facing version string, e.g. '2.4.1'")
    release_notes: Text
    restricted: bool = False


class ManagedService(Closed):
    """LST-04: one managed service ↔ at most one product."""

    service_id: Text
    deployment: Literal["private_service", "fully_managed_service"]
    templates: list[Text] = []
    plans: list[Text] = []


class MLLaunch(Closed):
    preview: bool = Field(
        False,
        description="an ML product in preview: its seller receives no disbursements and buyers are refunded "
        "all its charges at each month's close (BIL-05)",
    )
    supported_instance_types: list[Text] = []
    training_instance_types: list[Text] = []
    content_types: list[Text] = []
    mime_types: list[Text] = []
    input_modes: list[Literal["File", "Pipe"]] = []
    hyperparameters: list[dict[str, str]] = []


ML_KINDS = (ProductKind.ML_ALGORITHM, ProductKind.ML_MODEL)
PREVIEW_ONLY_ML = "only ML algorithms and model packages have a preview period [BIL-05]"


def preview_problem(kind: str, ml: MLLaunch | dict[str, object] | None) -> str | None:
    """The message for a preview flag on a product that is not an ML product, else None."""
    preview = ml.get("preview") if isinstance(ml, dict) else ml is not None and ml.preview
    return PREVIEW_ONLY_ML if preview and kind not in ML_KINDS else None


class CaseStudy(Closed):
    title: Text
    url: HttpUrl | None = None
    summary: str = ""


class ListingFields(Closed):
    """Every field a seller sets on a listing (LST-02), all optional here; submission checks completeness."""

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None = None
    short_description: Annotated[str, AfterValidator(_short_description)] | None = None
    long_description: str | None = None
    highlights: Annotated[list[Text], AfterValidator(_highlights_total)] | None = None
    category: Text | None = None
    tags: list[Text] | None = None
    seo_keywords: list[Text] | None = None
    seo_description: str | None = None
    region_selection: bool | None = Field(None, description="buyers choose a region at purchase")
    regions: list[Region] | None = None
    support: str | None = None
    case_studies: list[CaseStudy] | None = None
    refund_policy: str | None = None
    enterprise_only: bool | None = None
    fulfillment_url: HttpUrl | None = None
    webhook_url: Annotated[HttpUrl, AfterValidator(_fetchable)] | None = None
    icp_filing: str | None = None
    eula: Literal["standard"] | None = Field(None, description="'standard', or upload a PDF as asset kind 'eula'")
    tax_code: str | None = None
    metering_failure_mode: Literal["fail_open", "fail_closed", "partial"] | None = None
    versions: list[Version] | None = None
    ml: MLLaunch | None = None
    managed_service: ManagedService | None = None
    pricing: PricingDocument | None = None


class ProductCreate(ListingFields):
    code: Code
    kind: ProductKind
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
