"""Shared test support: one daemon process harness, one webhook harness.

Test modules import from here, never from each other.
"""
