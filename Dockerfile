# One image for every program: `docker run queueworks dist/event-counter.js`.
# The programs are bundled (scripts/build.ts): one file each, tree-shaken, no node_modules in the
# image, and less memory per process than running the sources.
FROM oven/bun:1.4.4-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Bun installs from package-lock.json; the bun npm package itself is not needed inside a Bun image.
RUN bun install --production --frozen-lockfile --ignore-scripts
COPY tsconfig.json ./
COPY scripts/build.ts ./scripts/
COPY src ./src
COPY layers ./layers
COPY programs ./programs
RUN bun run scripts/build.ts --outdir dist

FROM oven/bun:1.4.4-slim
WORKDIR /app
ENV NODE_ENV=production LOG_FORMAT=json METRICS_PORT=9090
COPY --from=build /app/dist ./dist
# The base image ships the unprivileged user "bun". /data is its own, so a named volume mounted
# there (the sales database) starts out writable by it.
RUN mkdir -p /data && chown bun:bun /data
USER bun
EXPOSE 9090
ENTRYPOINT ["bun", "run"]
CMD ["dist/demo.js"]
