"""The chat connector: people talk to the orchestrator from a chat network (docs/chat.md).

``base`` is the one interface every network's adapter fills (``ChatAdapter``) and the
records a message leaves in the store; ``config`` reads the roster's ``connector:`` block;
``matrix`` is the Matrix adapter (matrix-nio, the ``chat`` extra). The running service,
which types into the orchestrator's pane and reads its replies, is
``workers.connector_service``: it acts on the host, so it lives with the host layer.
"""
