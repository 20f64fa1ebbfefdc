"""Tests for the integration-test tooling in tests/support/."""
