# syntax=docker/dockerfile:1
# The agent image: one static binary (role chosen by AGENT_NAME), distroless,
# non-root, meant to run with a read-only root filesystem (the ECS task
# definition sets it). The builder runs on the build machine's platform and
# cross-compiles, so an arm64 image builds without emulation.
ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false -ldflags="-s -w" -o /agent ./cmd/agent

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /agent /agent
# Amazon RDS CA bundle: the archivist verifies its PostgreSQL server with it
# (ARCHIVE_DB_CA_PATH, sslmode=verify-full); see infra/rds/README.md.
COPY infra/rds/global-bundle.pem /etc/ca-a2a/rds-global-bundle.pem
USER nonroot:nonroot
EXPOSE 8001 8002 8003 8004
ENTRYPOINT ["/agent"]
