# The fleet-queue image: the `fleet` command, Celery, Flower and tmux.
# Used by docker-compose.yml for flower, beat and (optionally) a host worker.
FROM python:3.11-slim

# tmux: a host worker in a container talks to the host's tmux server through the
# mounted socket; its tmux must be the same version as the host's.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tmux \
    && rm -rf /var/lib/apt/lists/*

ARG FLEET_UID=1000
ARG FLEET_GID=1000
RUN groupadd --gid "${FLEET_GID}" fleet \
    && useradd --uid "${FLEET_UID}" --gid "${FLEET_GID}" --create-home --shell /bin/bash fleet \
    && install -d -o fleet -g fleet -m 0700 /var/lib/fleet-queue

WORKDIR /opt/fleet-queue
COPY pyproject.toml README.md beat_schedule.py ./
COPY fleet_queue ./fleet_queue
COPY workers ./workers
RUN pip install --no-cache-dir .

ENV FLEET_HOME=/var/lib/fleet-queue \
    PYTHONUNBUFFERED=1
USER fleet
WORKDIR /var/lib/fleet-queue
CMD ["fleet", "--help"]
