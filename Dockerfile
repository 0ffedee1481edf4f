# sqlgate container image, built in two stages:
#   build    Debian 12 with the -dev packages of scripts/deps and meson;
#   runtime  Debian 12 slim with only the shared libraries sqlgate links,
#            ca-certificates (TLS to SQL Server) and curl (the HEALTHCHECK).
#
#   docker build -t sqlgate .
#   docker run --rm -p 8080:8080 -e SQLGATE_API_TOKENS=change-me sqlgate
#
# The image listens on 0.0.0.0:8080 (SQLGATE_LISTEN below). sqlgate refuses a
# non-loopback address without API tokens, so give it SQLGATE_API_TOKENS (or
# SQLGATE_API_TOKENS_FILE), or SQLGATE_ALLOW_ANONYMOUS=true on a private
# network. With no database configured it serves the embedded SQLite demo
# databases from /var/lib/sqlgate/var (mount a volume there to keep them).
#
# tests/compose/check.sh keeps this file honest: the build packages must equal
# scripts/deps' build list, the meson options those of scripts/start, the
# runtime packages must exist in Debian 12 and cover every library the binary
# needs, and the build stage is replayed on the build machine.

FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev pkg-config python3 meson ninja-build libmicrohttpd-dev libjansson-dev \
      libsqlite3-dev freetds-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY meson.build meson_options.txt ./
COPY include ./include
COPY src ./src
COPY openapi ./openapi
COPY tools ./tools
# As scripts/start builds (the project's default build type, no -Dwerror:
# warnings are errors in scripts/test and CI, which build the same sources on
# the same Debian 12); no test suites in the image.
RUN meson setup /build /src -Dtests=disabled \
 && meson compile -C /build src/service/sqlgate \
 && /build/src/service/sqlgate --version

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libmicrohttpd12 libjansson4 libsqlite3-0 libsybdb5 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/sqlgate --create-home \
      --shell /usr/sbin/nologin sqlgate
COPY --from=build /build/src/service/sqlgate /usr/local/bin/sqlgate
USER sqlgate:sqlgate
WORKDIR /var/lib/sqlgate
ENV SQLGATE_LISTEN=0.0.0.0:8080
EXPOSE 8080
# Readiness, not liveness: Docker marks the container unhealthy while a
# critical database is down or the service drains, which is what compose's
# depends_on and a load balancer want to know.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:8080/health/ready || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sqlgate"]
