"""Composite Beam transforms of trackpipe and the plain-Python logic they call.

Modules without a Beam import hold the domain logic (parsing, fingerprints, the duplicate rule,
org extraction); the Beam modules are thin adapters around them.
"""
