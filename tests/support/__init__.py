"""Shared test support: worker programs the tests start as real processes."""
