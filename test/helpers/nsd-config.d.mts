// Types for nsd-config.mjs (plain JavaScript, shared with the bench).
export function nsdConfig(where: { host: string; port: number; dir: string; zone: string }): string;
