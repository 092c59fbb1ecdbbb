import { defineConfig } from 'vitest/config';

// End-to-end tests: real `bin/dashstream demo` processes and headless
// Chromium (Debian's /usr/bin/chromium through playwright-core). One file at
// a time: the machine has two cores.
export default defineConfig({
  test: {
    include: ['e2e/**/*.e2e.ts'],
    environment: 'node',
    fileParallelism: false,
    testTimeout: 240_000,
    hookTimeout: 120_000,
    reporters: ['verbose'],
  },
});
