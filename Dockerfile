# apptunnel server and agent image (docs/operations.md, "In a container").
#
#   docker build -t apptunnel .
#   docker run -d --read-only --tmpfs /tmp -v apptunnel:/var/lib/apptunnel -p 8443:8443 apptunnel
#
# NODE_IMAGE is any Debian-based image with Node.js 20.12 or later in /usr/local (node, npm and the
# headers in /usr/local/include/node) and a user `node` (uid 1000); CI builds from one it makes
# offline (scripts/container/make-base.sh).
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
# better-sqlite3 is compiled when no prebuilt binary can be downloaded for this Node.js (a new major,
# or no access to its release downloads); the headers come with Node.js, so nothing else is fetched.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
WORKDIR /src
# The sources come in before `npm ci`, which runs the package's own lifecycle scripts too.
COPY package.json package-lock.json ./
COPY scripts/build.mjs ./scripts/build.mjs
COPY bin ./bin
COPY src ./src
# `npm ci` runs the package's `prepare` script, which bundles src/ into dist/ (scripts/build.mjs).
RUN npm ci \
 && test -f dist/apptunnel.mjs \
 && npm prune --omit=dev
# The consoles' pages, scripts and stylesheets, which the server reads from the package's source
# tree at run time: every file of src/ that is not TypeScript.
RUN mkdir -p /runtime && find src -type f ! -name '*.ts' -exec cp --parents {} /runtime \;

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    APPTUNNEL_DATA_DIR=/var/lib/apptunnel \
    APPTUNNEL_LISTEN=0.0.0.0:8443 \
    APPTUNNEL_INGRESS_LISTEN=0.0.0.0:8080 \
    APPTUNNEL_METRICS_LISTEN=0.0.0.0:9464
WORKDIR /opt/apptunnel
# Owned by root and read-only to the user that runs: the image never changes itself, so the root
# file system can be mounted read-only; all state is in the data volume.
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist ./dist
COPY --from=build /runtime/src ./src
# `apptunnel` on the PATH, for `docker exec CONTAINER apptunnel tunnel create …`.
RUN printf '#!/bin/sh\nexec node /opt/apptunnel/dist/apptunnel.mjs "$@"\n' >/usr/local/bin/apptunnel \
 && chmod 0755 /usr/local/bin/apptunnel \
 && mkdir -p /var/lib/apptunnel && chown node:node /var/lib/apptunnel && chmod 0700 /var/lib/apptunnel
USER node
VOLUME /var/lib/apptunnel
# 8443: HTTPS (admin API, consoles, agent endpoint); 8080: ingress; 9464: /healthz, /readyz, /metrics.
EXPOSE 8443 8080 9464
# /healthz answers as soon as the process does; orchestrators that route traffic should use /readyz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9464/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The bundle is run directly: with no src/ in the image there is nothing to rebuild.
ENTRYPOINT ["node", "/opt/apptunnel/dist/apptunnel.mjs"]
CMD ["server"]
