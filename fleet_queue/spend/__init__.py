"""Spend: what the agents' runtimes recorded they used, priced, summed and capped.

``workers.spend_reader`` reads the records on a host (Claude Code transcripts, Codex
rollouts); this package decides: ``usage`` holds the values, ``prices`` the price table,
``ledger`` turns reads into ledger rows, ``budgets`` the caps and pacing the tick obeys.
"""
