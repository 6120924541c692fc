# The cache service of config/dev/docker-compose.yaml: Debian 12's
# redis-server on the same base as stratq's own image, so that the stack
# needs no image from a registry (`make images` builds it).
FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive
# The redis user gets a fixed uid and gid (999, as in the official image)
# before the package makes one of its own choosing, so that a runtime setting
# such as Kubernetes' runAsUser can name it.
RUN groupadd --system --gid 999 redis \
 && useradd --system --uid 999 --gid 999 --home-dir /var/lib/redis \
        --shell /usr/sbin/nologin redis \
 && apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data \
 && chown redis:redis /data
# The data directory is a volume (the Compose file's cache-data): AOF and RDB
# files go there, owned by the redis user.
VOLUME /data
WORKDIR /data
USER 999:999
EXPOSE 6379
# No configuration file: the Compose file passes its settings as arguments.
CMD ["redis-server", "--dir", "/data", "--protected-mode", "no"]
