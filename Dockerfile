# One image for every process of the system; the command picks the process:
#   docker run IMAGE serve orders --host 0.0.0.0     (see docker-compose.yml)
# Built by `make up` / `docker compose up --build`; docs/docker.md has the details.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    # Inside a container the APIs must listen on every interface to be reachable at all.
    ORDER_API_HOST=0.0.0.0 \
    CUSTOMER_API_HOST=0.0.0.0

RUN useradd --create-home --uid 10001 --user-group app

# The pinned dependencies first: this layer is rebuilt only when requirements.lock changes.
COPY requirements.lock /tmp/requirements.lock
RUN pip install -r /tmp/requirements.lock && rm /tmp/requirements.lock

# Then our own code (what .dockerignore lets through), installed as a plain package.
COPY . /tmp/src
RUN pip install --no-deps /tmp/src && rm -rf /tmp/src && pip check

USER app
WORKDIR /home/app
EXPOSE 3001 3002
ENTRYPOINT ["ordersystem"]
CMD ["run"]
