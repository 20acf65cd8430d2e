"""Webhook signature schemes: one module per provider, each with detect, verify and sign."""
