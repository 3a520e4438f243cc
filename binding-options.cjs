// How the addon's prebuilt binaries are named and found (pkg-prebuilds): one Node-API 8 binary
// per platform, arch and libc, at prebuilds/lb4-<platform>-<arch>[-musl]/node-napi-v8.node. Read by
// the loader (lib/engine/addon.ts), by the install script's check (`pkg-prebuilds-verify`) and by
// scripts/prebuild.mjs, so the three always agree. CommonJS because pkg-prebuilds require()s it.
module.exports = { name: 'lb4', napi_versions: [8] };
