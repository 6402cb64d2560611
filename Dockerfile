# Tollgate image for compose.yaml: gateway, console and relay share it.
FROM python:3.11-slim

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements/lock.txt requirements/lock.txt
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements/lock.txt
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN pip install --no-cache-dir --no-deps -e .

EXPOSE 8080 3000 8787
CMD ["tollgate", "up", "--host", "0.0.0.0", "--no-console"]
