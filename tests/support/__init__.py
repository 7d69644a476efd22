"""Test support code (builders of synthetic input); not part of the dgcap package."""
