# syntax=docker/dockerfile:1
# The Pharos image: one binary for every role (-target=all, agent,
# aggregator, query, nats).
#
#   docker build -t ghcr.io/pharos-obs/pharos:0.1.0 --build-arg VERSION=0.1.0 .
#   docker run --rm -p 9400:9400 -v pharos-data:/home/nonroot/data \
#     ghcr.io/pharos-obs/pharos:0.1.0 -http.listen-address=0.0.0.0:9400
#
# deploy/image_test.go checks this file (stages, user, what the last stage
# holds, the Go version against go.mod).

# The Go version of go.mod's go directive.
ARG GO_VERSION=1.26.7

# Build on Debian 12 (bookworm), which has gcc: the binary uses cgo
# (VictoriaLogs' zstd bindings, gozstd) and so links glibc dynamically; the
# runtime image below is Debian 12 too, with the same glibc.
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=0.1.0-dev
ARG REVISION=
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -trimpath \
      -ldflags "-s -w -X github.com/pharos-obs/pharos/internal/app.Version=${VERSION} -X github.com/pharos-obs/pharos/internal/app.Revision=${REVISION}" \
      -o /out/pharos ./cmd/pharos

# distroless base: glibc (all the binary links besides itself), CA
# certificates (webhooks, Alertmanager over TLS) and time zone data; no
# shell, no package manager. The nonroot variant's user is 65532, and
# /home/nonroot belongs to it: the default -data.dir ./data lands there.
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/pharos /usr/local/bin/pharos
WORKDIR /home/nonroot
# Numeric, so that Kubernetes can check runAsNonRoot.
USER 65532:65532
# HTTP; OTLP gRPC and HTTP; NATS clients and routes (-target=nats); gossip.
EXPOSE 9400 4317 4318 4222 6222 7946
ENTRYPOINT ["/usr/local/bin/pharos"]
