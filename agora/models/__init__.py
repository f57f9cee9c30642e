"""All tables, in one place so domains import each other's models without cycles."""

from agora.models.audit import AuditEvent
from agora.models.base import Base
from agora.models.billing import (
    BillingPeriod,
    Disbursement,
    DisbursementLine,
    Invoice,
    InvoiceLine,
    Refund,
    UsageDay,
    UsageDaySum,
    UsageRollup,
)
from agora.models.catalog import ChangeRequest, Product, ProductAsset, ProductRegion, SearchDocument
from agora.models.catalog_api import CatalogEntity, CatalogTag, ChangeSet
from agora.models.contracts import AnnualPurchase, Contract, ContractCharge, Entitlement
from agora.models.identities import AccessKey, ApiToken, Buyer, Operator, Role, Seller, TaxForm
from agora.models.jobs import Job, JobState
from agora.models.metering import InstanceRun, MeteringError, MetricScrape, UsageRecord
from agora.models.notifications import Notification
from agora.models.offers import Offer
from agora.models.pricing import FeeRate, InfrastructurePrice, PriceVersion, PricingModelRequest
from agora.models.subscriptions import LicenseActivation, RegistrationTokenUse, Subscription, TrialUse
from agora.models.web import LoginThrottle, Password, PasswordReset, WebSession
from agora.models.webhooks import WebhookDelivery

__all__ = [
    "AccessKey",
    "AnnualPurchase",
    "ApiToken",
    "AuditEvent",
    "Base",
    "BillingPeriod",
    "Buyer",
    "CatalogEntity",
    "CatalogTag",
    "ChangeRequest",
    "ChangeSet",
    "Contract",
    "ContractCharge",
    "Disbursement",
    "DisbursementLine",
    "Entitlement",
    "FeeRate",
    "InfrastructurePrice",
    "InstanceRun",
    "Invoice",
    "InvoiceLine",
    "Job",
    "JobState",
    "LicenseActivation",
    "LoginThrottle",
    "MeteringError",
    "MetricScrape",
    "Notification",
    "Offer",
    "Operator",
    "Password",
    "PasswordReset",
    "PriceVersion",
    "PricingModelRequest",
    "Product",
    "ProductAsset",
    "ProductRegion",
    "Refund",
    "RegistrationTokenUse",
    "Role",
    "SearchDocument",
    "Seller",
    "Subscription",
    "TaxForm",
    "TrialUse",
    "UsageDay",
    "UsageDaySum",
    "UsageRecord",
    "UsageRollup",
    "WebSession",
    "WebhookDelivery",
]
