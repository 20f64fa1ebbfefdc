# sipbridge worker image: Debian 12 + Python 3.11 (pjsua2-python has wheels for 3.10-3.12).
FROM python:3.11-slim-bookworm
WORKDIR /opt/sipbridge
COPY . .
RUN ./bootstrap && rm -rf /root/.cache
ENV PATH=/opt/sipbridge/.venv/bin:$PATH
# SIP and RTP need the host's addresses as they are (no port-mapping NAT): run with host networking.
ENTRYPOINT ["sipbridge"]
CMD ["run"]
