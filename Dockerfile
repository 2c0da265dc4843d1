# syntax=docker/dockerfile:1
# falco-drop's image: `npm run release` builds it for linux/amd64 and linux/arm64 (hack/release.mjs).

# Build: install the locked dependencies and bundle the service with esbuild. The bundle is
# plain JavaScript, so it is built once on the build machine's own platform, not under emulation.
FROM --platform=$BUILDPLATFORM docker.io/library/node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY hack/build.mjs hack/build.mjs
COPY src/ src/
# `npm ci` runs `prepare` (node hack/build.mjs), which writes the bundle to dist/.
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund

# Runtime: Node 24 (the current LTS, the same major the tests run on: test/runtime.test.ts) on
# distroless: no shell, no package manager, non-root (65532).
# dist/main.js bundles every production dependency, so no node_modules is copied: nothing from
# devDependencies can reach the image (test/release/install.test.ts proves the packed package
# runs with production dependencies alone).
FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production PORT=8080
# package.json for "type": "module"; the bundle's licences and source map stay beside it.
COPY --from=build /src/package.json ./
COPY --from=build /src/dist/ dist/
USER 65532:65532
EXPOSE 8080
# The image's entrypoint is node itself, so node is PID 1 and gets SIGTERM directly. The V8 heap
# is sized to half the container's memory limit (the cgroup limit Node reads through libuv), as
# package.json's start script runs it (test/runtime.test.ts holds the two the same).
CMD ["--max-old-space-size-percentage=50", "--max-semi-space-size=4", "dist/main.js"]
