"""The public SDK surface is pinned: changing it is a deliberate act."""

import tactful


def test_public_names_are_pinned() -> None:
    assert sorted(tactful.__all__) == sorted(
        [
            "Agent",
            "Bail",
            "CannedResponse",
            "CannedResponseField",
            "Capability",
            "CompositionMode",
            "ConfigurationError",
            "ConflictError",
            "Criticality",
            "Customer",
            "Event",
            "EventKind",
            "EventSource",
            "Finding",
            "MessageOutputMode",
            "Guideline",
            "JourneyHandle",
            "MatchContext",
            "ModelError",
            "ModerationAction",
            "ModerationMode",
            "NotFoundError",
            "Operator",
            "PayloadTooLargeError",
            "ProposedGuideline",
            "RetrieverContext",
            "RetrieverResult",
            "Server",
            "Session",
            "SessionMode",
            "Settings",
            "StateHandle",
            "StoreError",
            "TactfulError",
            "Tag",
            "Term",
            "ToolContext",
            "ToolParam",
            "ToolResult",
            "Trace",
            "TransientGuideline",
            "TransitionHandle",
            "TurnView",
            "ValidationError",
            "__version__",
            "tool",
        ]
    )
    for name in tactful.__all__:
        assert hasattr(tactful, name), name


def test_errors_share_one_base() -> None:
    errors = ["ConflictError", "ModelError", "NotFoundError", "PayloadTooLargeError"]
    errors += ["StoreError", "ValidationError", "ConfigurationError"]
    for name in errors:
        assert issubclass(getattr(tactful, name), tactful.TactfulError)
