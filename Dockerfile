# syntax=docker/dockerfile:1
#
# cdcrelay container image: a static binary on distroless "static", run as the
# image's nonroot user (65532). The relay writes nothing to disk, so the
# container runs with a read-only root filesystem; only the config (and any
# TLS or password files) are mounted, read-only.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t cdcrelay .

# ---- build -----------------------------------------------------------------
# Built on the build machine's platform and cross-compiled, so a multi-arch
# build needs no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS build
WORKDIR /src

COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/cdcrelay ./cmd/cdcrelay

# ---- runtime ---------------------------------------------------------------
# Pinned by tag and by digest; the digest wins. To move to a newer base:
#   crane digest gcr.io/distroless/static-debian12:nonroot
FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639

ARG VERSION=dev
LABEL org.opencontainers.image.title="cdcrelay" \
      org.opencontainers.image.description="Streams PostgreSQL and MySQL changes into Kafka, exactly once for read_committed consumers" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/cdcrelay/cdcrelay"

COPY --from=build /out/cdcrelay /cdcrelay

USER 65532:65532

# /metrics, /healthz and /readyz. The config must set metrics.listen to
# 0.0.0.0:9187 for anything outside the container to reach it; the
# HEALTHCHECK below works with the default 127.0.0.1:9187 too.
EXPOSE 9187

# distroless has no shell and no curl: the binary probes itself.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/cdcrelay", "healthcheck", "--url", "http://127.0.0.1:9187/healthz", "--timeout", "4s"]

ENTRYPOINT ["/cdcrelay"]
CMD ["run", "--config", "/etc/cdcrelay/config.yaml"]
