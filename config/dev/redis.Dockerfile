# The cache service of config/dev/docker-compose.yaml: Debian 12's
# redis-server on the same base as stratq's own image, so that the stack
# needs no image from a registry (`make images` builds it).
FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data \
 && chown redis:redis /data
# The data directory is a volume (the Compose file's cache-data): AOF and RDB
# files go there, owned by Debian's redis user.
VOLUME /data
WORKDIR /data
USER redis
EXPOSE 6379
# No configuration file: the Compose file passes its settings as arguments.
CMD ["redis-server", "--dir", "/data", "--protected-mode", "no"]
