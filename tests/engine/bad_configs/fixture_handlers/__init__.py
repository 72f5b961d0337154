"""Handlers the bad-config fixtures point at, so only the intended mistake fails."""
