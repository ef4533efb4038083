# syntax=docker/dockerfile:1
# commerce: a static binary on distroless. Migrations (migrations/) and the Lua scripts
# (scripts/lua/) are embedded in the binary with go:embed, so nothing else is copied.

FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-mod=readonly
# Dependencies first, so they stay cached while only the code changes.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/commerce ./cmd/commerce

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/commerce /commerce
USER nonroot
# The service's own default is 127.0.0.1:8080, which nothing outside a container reaches.
ENV HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/commerce"]
CMD ["serve"]
