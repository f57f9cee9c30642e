"""Pricing: the document's shape (`schema`), its rules (`rules`, pure) and price versions."""
