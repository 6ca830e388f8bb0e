"""Definitions: the one place that creates, changes and deletes what defines an agent
(guidelines, observations, relationships, journeys, canned responses, terms, variables, tags,
tool services), with one set of rules, in transactions that the store records as revisions.

The SDK, the REST routers and definition files (``tactful plan/apply/export``) are views over
it: ``deletion`` (deleting with what must follow), ``document`` (an agent's definitions as one
document, the file format), ``files`` (documents as YAML files and folders), ``plan`` (what
applying a document changes), ``apply`` and ``revisions`` (history and rollback).
"""
