"""Shared leaf package: the error tree and YAML plumbing used by gateway, mappers and
connectors; imports nothing from them.
"""
