# sipbridge worker image: Debian 12 + Python 3.11 (within pyproject.toml's requires-python).
FROM python:3.11-slim-bookworm
WORKDIR /opt/sipbridge
COPY . .
RUN ./bootstrap && rm -rf /root/.cache
# --build-arg WITH_KAMAILIO=1: Kamailio in the image too, for `sipbridge run --workers N
# --front kamailio` in one container (docker-compose.yml runs Kamailio as its own service).
ARG WITH_KAMAILIO=0
RUN if [ "$WITH_KAMAILIO" = 1 ]; then apt-get update -qq && \
    apt-get install -y -qq --no-install-recommends kamailio && rm -rf /var/lib/apt/lists/*; fi
ENV PATH=/opt/sipbridge/.venv/bin:$PATH
# SIP and RTP need the host's addresses as they are (no port-mapping NAT): run with host networking.
ENTRYPOINT ["sipbridge"]
CMD ["run"]
