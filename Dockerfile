# sipbridge worker image: Debian 12 + Python 3.11 (within pyproject.toml's requires-python).
FROM python:3.11-slim-bookworm
WORKDIR /opt/sipbridge
COPY . .
# bootstrap installs Kamailio too: the image's `sipbridge run` is the default cell (workers sized
# to the container's cores, Kamailio in front); docker-compose.yml instead runs Kamailio as its
# own service and sets cell.front: none.
RUN ./bootstrap && rm -rf /root/.cache /var/lib/apt/lists/*
ENV PATH=/opt/sipbridge/.venv/bin:$PATH
# SIP and RTP need the host's addresses as they are (no port-mapping NAT): run with host networking.
ENTRYPOINT ["sipbridge"]
CMD ["run"]
