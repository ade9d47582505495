# Build stage: compile the release binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked && mkdir -p /data

# Runtime stage: a small image with no shell, running as a non-root user.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/referral-api /usr/local/bin/referral-api
COPY --from=build --chown=nonroot:nonroot /data /data
USER nonroot
ENV LISTEN_ADDR=0.0.0.0:8080 \
    DATA_DIR=/data \
    LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
# The runtime image has no shell or curl: the binary probes its own GET /health.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/referral-api", "health"]
ENTRYPOINT ["/usr/local/bin/referral-api"]
CMD ["serve"]
