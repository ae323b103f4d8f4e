# Fulcrum container image: a build stage with the dev dependencies (TypeScript),
# a runtime stage with the production dependencies and the compiled dist/src only.
#
#   docker build -t fulcrum .
#   docker run -p 8080:8080 fulcrum --backend http://host.docker.internal:8081
#   docker run -p 8080:8080 -v $PWD/fulcrum.yaml:/etc/fulcrum/fulcrum.yaml:ro -e FULCRUM_CONFIG=/etc/fulcrum/fulcrum.yaml fulcrum
#   docker run -p 8081:8081 fulcrum backend --port 8081 --name "Backend 1"
#
# See docs/deployment.md.

FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the "prepare" script builds, and the sources are not copied yet.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json

FROM node:20-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
# The node images come with an unprivileged "node" user (uid 1000).
USER node
EXPOSE 8080
# Node itself checks /healthz: the slim image has no curl or wget. Set FULCRUM_PORT
# when the main listener is not on 8080 (the variable also sets that port).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.FULCRUM_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Configuration: a mounted file named by FULCRUM_CONFIG (or -c), the environment
# (FULCRUM_PORT, FULCRUM_LOG_LEVEL, FULCRUM_ADMIN_TOKEN, REDIS_URL) and flags.
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["start"]
