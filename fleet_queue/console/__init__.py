"""The operator console: ``fleet board --serve``, a live web board to watch, steer and stop
the fleet (Starlette + uvicorn, Jinja2 templates, server-sent events, xterm.js).

- ``app``: the application and the server (bind, auth rules, shutdown);
- ``security``: basic auth, the actor of each action, CSRF and Origin checks;
- ``views``: what the pages show (agents, board marks, card detail), as plain data;
- ``routes_board``, ``routes_actions``, ``routes_terminal``: one module per area;
- ``terminal``: the interface to this host's panes; ``workers.pane_stream`` implements it
  and the CLI injects it (``fleet_queue`` never imports ``workers``).
"""
