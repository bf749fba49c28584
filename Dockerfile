# One image for every program: `docker run queueworks programs/event-counter.ts`.
FROM oven/bun:1.4.4-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Bun installs from package-lock.json; the bun npm package itself is not needed inside a Bun image.
RUN bun install --production --frozen-lockfile --ignore-scripts

FROM oven/bun:1.4.4-slim
WORKDIR /app
ENV NODE_ENV=production LOG_FORMAT=json METRICS_PORT=9090
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY src ./src
COPY layers ./layers
COPY programs ./programs
# The base image ships the unprivileged user "bun".
USER bun
EXPOSE 9090
ENTRYPOINT ["bun", "run"]
CMD ["programs/demo.ts"]
