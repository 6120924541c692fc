# stratq image: `stratq api` and `stratq worker` (the default command), with
# the worker's executor program stratq-executor beside stratq. Two stages on
# Debian 12: the build stage compiles a release build/stratq and
# build/stratq-executor with `make`; the runtime stage has only the shared
# libraries they link, python3 with numpy and pandas from Debian (for the
# jobs), and tini as PID 1. It runs as the numeric user 10001 and needs
# nothing writable but /tmp, so it works with a read-only root filesystem and
# a tmpfs /tmp (docs/deploy.md, config/dev/docker-compose.yaml).

# ---------------------------------------------------------------------------
# build: the -dev packages that the Makefile's pkg-config lines need (PKGS:
# hiredis libevent libevent_openssl openssl jansson libcurl libseccomp;
# EXEC_PKGS adds python3-embed for the executor).
FROM debian:bookworm-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential pkg-config \
        libhiredis-dev libevent-dev libjansson-dev libcurl4-openssl-dev \
        libssl-dev libpython3-dev libseccomp-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# .dockerignore lets in only what the release build reads.
COPY Makefile ./
COPY tools/ tools/
COPY web/ web/
COPY src/ src/
# build/stratq makes build/stratq-executor too.
RUN make -j"$(nproc)" build/stratq

# ---------------------------------------------------------------------------
# runtime
FROM debian:bookworm-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# The libraries the two programs link (libpython3.11 for stratq-executor's
# embedded interpreter, and it alone), python3 + numpy + pandas for the jobs
# (cold mode runs /usr/bin/python3; warm mode preloads numpy and pandas),
# tini as PID 1.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libhiredis0.14 libevent-2.1-7 libevent-openssl-2.1-7 libssl3 libjansson4 libcurl4 \
        libseccomp2 ca-certificates \
        libpython3.11 python3 python3-numpy python3-pandas \
        tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 stratq \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin stratq

# The worker finds its executor program beside stratq, in the same directory.
COPY --from=build /src/build/stratq /usr/local/bin/stratq
COPY --from=build /src/build/stratq-executor /usr/local/bin/stratq-executor
# The harness goes where the binary looks by itself (<bindir>/../share/stratq/python);
# STRATQ_HARNESS_DIR says so explicitly. It is byte-compiled here because the
# root filesystem is read-only at run time.
COPY python/stratq/ /usr/local/share/stratq/python/stratq/
RUN python3 -m compileall -q /usr/local/share/stratq/python \
 && for p in stratq stratq-executor; do \
        if ldd "/usr/local/bin/$p" | grep 'not found'; then \
            echo "$p links a library the runtime stage lacks" >&2; exit 1; fi; done \
 && stratq --version && stratq-executor --version

ENV STRATQ_HARNESS_DIR=/usr/local/share/stratq/python \
    STRATQ_PYTHON=/usr/bin/python3 \
    TMPDIR=/tmp \
    HOME=/tmp \
    LANG=C.UTF-8
WORKDIR /
USER 10001:10001
# tini reaps orphans and passes SIGTERM on to stratq, whose worker then
# drains (STRATQ_DRAIN_TIMEOUT_S); keep the stop grace period above it.
ENTRYPOINT ["/usr/bin/tini", "--", "stratq"]
CMD ["worker"]
