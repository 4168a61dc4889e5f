"""Alembic migrations of the card store (SQLite and PostgreSQL)."""
