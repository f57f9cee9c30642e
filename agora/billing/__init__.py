"""Billing: the rating core, invoices, billing runs, simulation, seller disbursements."""
