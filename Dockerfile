# syntax=docker/dockerfile:1
# Build a static binary (SQLite is pure Go: no cgo) and ship it on distroless.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/batch ./cmd/batch

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/batch /usr/local/bin/batch
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/batch"]
CMD ["run"]
