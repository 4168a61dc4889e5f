"""What runs on each host: tmux layer, runtimes, heartbeat, delivery, stub agent.

``workers`` acts on one host and never decides what to dispatch.
"""
