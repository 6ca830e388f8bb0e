"""Definitions: the one place that creates, changes and deletes what defines an agent, with one
set of rules, in transactions that the store records as revisions. The REST routers map their
requests to one call here, the SDK's handles (``tactful.Agent``, journeys) call the same
functions in-process, and definition files (``tactful plan|apply|export``) are applied here.

One module per concept: ``agents``, ``guidelines`` (and observations), ``canned`` (canned
responses), ``glossary``, ``capabilities``, ``variables``, ``journeys`` (with their graphs),
``relationships``, ``tags``, ``services`` (tools and tool services); what they share: ``keys``
(natural keys), ``references`` (tools named must exist), ``ends`` (relationship ends),
``deletion`` (what deleting entails), ``prune`` (what Python definitions no longer define),
``customers`` (the guest). Definitions as documents: ``document`` (the file format), ``files``
(YAML), ``plan``, ``apply`` (one transaction), ``revisions`` (history, rollback).
"""
