"""Every job handler, registered in one place so any worker process can run any job."""

from __future__ import annotations


def register_all() -> None:
    """Import the modules whose `@jobs.handler` decorators register job handlers."""
    import agora.billing.payouts
    import agora.billing.service
    import agora.catalog.tasks
    import agora.compat.aws.catalog.change_sets
    import agora.metering.partitions
    import agora.metering.tasks
    import agora.notifications.tasks
    import agora.pricing.service
    import agora.subscriptions.tasks
    import agora.webhooks.tasks  # noqa: F401
